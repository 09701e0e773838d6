// ONNX export: the exported graph (run by onnxruntime-node) matches a brute-force Bernoulli-expectation computation,
// a tfjs computation, and (where Python's onnxruntime is installed) the same file run by Python's onnxruntime.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import * as tf from '@tensorflow/tfjs';
import {
  exportScoringModel,
  readScoringModelMetadata,
  vocabularyHash,
} from '../../src/model/scoring-graph.ts';
import { bruteForceRow, randomScoringState, mulberry32 } from './fixtures.ts';
import { testPython } from '../helpers/python.ts';

const N = 257;
const R = 5;
const K = 16;
const state = randomScoringState({ seed: 11, N, R, K, step: 42, version: 9, thetaScale: 2 });
const bytes = exportScoringModel(state, { vocabularyHash: 'abc123', modelName: 'nlsm' });

// A batch mixing both directions, with a sparse history term on a few (row, entity) pairs (one pair repeated: adds up).
const random = mulberry32(5);
const B = 12;
const anchors = Array.from({ length: B }, () => Math.floor(random() * N));
const relations = Array.from({ length: B }, () => Math.floor(random() * R));
const directions = Array.from({ length: B }, (_, i) => (i % 2) as 0 | 1);
const extras: Array<[number, number, number]> = [
  [0, 3, 1.5],
  [0, 3, 0.25],
  [4, 100, -2],
  [11, 256, 3],
];
const k = 10;

function feeds(kValue: number, withExtras = true): Record<string, ort.Tensor> {
  const used = withExtras ? extras : [];
  return {
    anchor: new ort.Tensor('int64', BigInt64Array.from(anchors, BigInt), [B]),
    relation: new ort.Tensor('int64', BigInt64Array.from(relations, BigInt), [B]),
    direction: new ort.Tensor('int64', BigInt64Array.from(directions, BigInt), [B]),
    extra_index: new ort.Tensor(
      'int64',
      BigInt64Array.from(used.flatMap(([row, e]) => [BigInt(row), BigInt(e)])),
      [used.length, 2],
    ),
    extra_value: new ort.Tensor('float32', Float32Array.from(used.map(([, , v]) => v)), [
      used.length,
    ]),
    k: new ort.Tensor('int64', BigInt64Array.from([BigInt(kValue)]), [1]),
  };
}

function expectedScores(withExtras = true): Float64Array[] {
  const rows = anchors.map((a, i) => bruteForceRow(state, a, relations[i], directions[i]));
  if (withExtras) for (const [row, e, v] of extras) rows[row][e] += v;
  return rows;
}

function maxAbsDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length);
  let max = 0;
  for (let i = 0; i < actual.length; i++) max = Math.max(max, Math.abs(actual[i] - expected[i]));
  return max;
}

test('metadata props carry version, step, vocabulary hash, N, K, R', () => {
  const meta = readScoringModelMetadata(bytes);
  assert.deepEqual(meta, {
    version: 9,
    step: 42,
    vocabularyHash: 'abc123',
    numEntities: N,
    numRelations: R,
    K,
    modelName: 'nlsm',
  });
  assert.throws(
    () => readScoringModelMetadata(new Uint8Array([1, 2, 3, 255, 255])),
    /not an ONNX model|metadata/,
  );
  assert.notEqual(vocabularyHash(['a', 'b'], ['r']), vocabularyHash(['a', 'b'], ['s']));
  assert.equal(vocabularyHash(['a', 'b'], ['r']), vocabularyHash(['a', 'b'], ['r']));
});

test('export refuses inconsistent or non-finite states, naming the field', () => {
  assert.throws(
    () => exportScoringModel({ ...state, z: state.z.subarray(1) }, { vocabularyHash: 'x' }),
    /ScoringState\.z/,
  );
  const broken = Float32Array.from(state.theta);
  broken[3] = Number.NaN;
  assert.throws(
    () => exportScoringModel({ ...state, theta: broken }, { vocabularyHash: 'x' }),
    /NaN/,
  );
});

test('onnxruntime-node all_scores and top-k match the brute-force Bernoulli expectation (max abs diff <= 1e-4)', async () => {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const out = await session.run(feeds(k));
    const expected = expectedScores();
    assert.deepEqual(out.all_scores.dims, [B, N]);
    assert.deepEqual(out.indices.dims, [B, k]);
    const all = out.all_scores.data as Float32Array;
    const diff = maxAbsDiff(all, Float64Array.from(expected.flatMap((row) => Array.from(row))));
    assert.ok(diff <= 1e-4, `max abs diff ${diff}`);
    // The history term really moved row 0's entity 3 by 1.75.
    const plain = await session.run(feeds(k, false));
    assert.ok(Math.abs(all[3] - (plain.all_scores.data as Float32Array)[3] - 1.75) < 1e-5);
    // top-k: descending, and equal to the k best brute-force entries
    const indices = out.indices.data as BigInt64Array;
    const scores = out.scores.data as Float32Array;
    for (let b = 0; b < B; b++) {
      const best = Array.from(expected[b].keys())
        .sort((x, y) => expected[b][y] - expected[b][x])
        .slice(0, k);
      const got = Array.from(indices.subarray(b * k, (b + 1) * k), Number);
      assert.deepEqual(got, best, `row ${b}`);
      for (let j = 0; j < k; j++)
        assert.ok(Math.abs(scores[b * k + j] - expected[b][got[j]]) <= 1e-4);
    }
  } finally {
    await session.release();
  }
});

test('k is clamped to N', async () => {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const out = await session.run(feeds(N + 1000), ['indices', 'scores']);
    assert.deepEqual(out.indices.dims, [B, N]);
    const sorted = Array.from((out.indices.data as BigInt64Array).subarray(0, N), Number).sort(
      (a, b) => a - b,
    );
    assert.deepEqual(
      sorted,
      Array.from({ length: N }, (_, i) => i),
    );
  } finally {
    await session.release();
  }
});

test('onnxruntime-node matches a tfjs computation of the NLSM logits (max abs diff <= 1e-4)', async () => {
  await tf.setBackend('cpu');
  const session = await ort.InferenceSession.create(bytes);
  try {
    const out = await session.run(feeds(k, false), ['all_scores']);
    const expected = tf.tidy(() => {
      const z = tf.tensor2d(state.z, [N, K]);
      const theta = tf.tensor3d(state.theta, [R, K, 4]);
      const rows: tf.Tensor[] = [];
      for (let b = 0; b < B; b++) {
        const anchorAttributes = z.slice([anchors[b], 0], [1, K]); // [1, K]
        const [subjectZ, objectZ] =
          directions[b] === 0 ? [anchorAttributes, z] : [z, anchorAttributes]; // broadcast to [N, K]
        const th = theta.slice([relations[b], 0, 0], [1, K, 4]).reshape([K, 4]);
        const [th00, th01, th10, th11] = tf.unstack(th, 1); // each [K]
        const one = tf.scalar(1);
        const expectation = tf.addN([
          tf.mul(tf.mul(tf.sub(one, subjectZ), tf.sub(one, objectZ)), th00),
          tf.mul(tf.mul(tf.sub(one, subjectZ), objectZ), th01),
          tf.mul(tf.mul(subjectZ, tf.sub(one, objectZ)), th10),
          tf.mul(tf.mul(subjectZ, objectZ), th11),
        ]); // [N, K]
        rows.push(expectation.sum(1));
      }
      return tf.stack(rows); // [B, N]
    });
    const diff = maxAbsDiff(out.all_scores.data as Float32Array, expected.dataSync());
    expected.dispose();
    assert.ok(diff <= 1e-4, `max abs diff vs tfjs ${diff}`);
  } finally {
    await session.release();
  }
});

test("the same file gives the same answers in Python's onnxruntime", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tkg-onnx-'));
  try {
    const modelPath = join(dir, 'scorer.onnx');
    writeFileSync(modelPath, bytes);
    const script = [
      'import json, sys, numpy as np, onnxruntime as ort',
      'spec = json.load(sys.stdin)',
      's = ort.InferenceSession(spec["model"], providers=["CPUExecutionProvider"])',
      'feeds = {',
      '  "anchor": np.array(spec["anchor"], dtype=np.int64), "relation": np.array(spec["relation"], dtype=np.int64),',
      '  "direction": np.array(spec["direction"], dtype=np.int64),',
      '  "extra_index": np.array(spec["extra_index"], dtype=np.int64).reshape(-1, 2),',
      '  "extra_value": np.array(spec["extra_value"], dtype=np.float32), "k": np.array([spec["k"]], dtype=np.int64)}',
      'idx, sc, al = s.run(["indices", "scores", "all_scores"], feeds)',
      'print(json.dumps({"indices": idx.tolist(), "scores": sc.astype(float).tolist(), "all": al.astype(float).ravel().tolist()}))',
    ].join('\n');
    const input = JSON.stringify({
      model: modelPath,
      anchor: anchors,
      relation: relations,
      direction: directions,
      extra_index: extras.flatMap(([row, e]) => [row, e]),
      extra_value: extras.map(([, , v]) => v),
      k,
    });
    const python = JSON.parse(
      execFileSync(testPython(), ['-c', script], { input, encoding: 'utf8' }),
    ) as {
      indices: number[][];
      scores: number[][];
      all: number[];
    };
    const session = await ort.InferenceSession.create(bytes);
    try {
      const out = await session.run(feeds(k));
      assert.deepEqual(
        python.indices.flat(),
        Array.from(out.indices.data as BigInt64Array, Number),
      );
      assert.ok(maxAbsDiff(python.all, out.all_scores.data as Float32Array) <= 1e-5);
      assert.ok(maxAbsDiff(python.scores.flat(), out.scores.data as Float32Array) <= 1e-5);
    } finally {
      await session.release();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
