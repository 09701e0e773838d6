import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileSlicing, stepOfTime } from '../../src/datasets/slicing.ts';
import {
  datasetFactEvents,
  linkSnapshots,
  loadDataset,
  tkgSnapshots,
} from '../../src/datasets/index.ts';
import { encodeNamedFacts, readNamedFactFile, sliceEvents } from '../../src/datasets/events.ts';
import { loadRenetDataset } from '../../src/datasets/renet.ts';

test('Enron sliced as DySAT / the paper: 143 nodes, 16 steps, 60-day steps', () => {
  const enron = loadDataset('enron');
  assert.equal(enron.kind, 'link');
  if (enron.kind !== 'link') return;
  assert.equal(enron.numNodes, 143);
  assert.equal(enron.numSteps, 16);
  assert.equal(enron.slicing.granularity, '60d');
  const snaps = linkSnapshots(enron);
  assert.deepEqual(
    snaps.map((s) => s.step),
    [...Array(16).keys()],
  );
  for (const s of snaps) assert.ok(s.triples.length > 0, `step ${s.step} is empty`);
  // origin = first e-mail + 200 days exactly
  assert.equal(Date.parse(enron.slicing.origin) - enron.events[0].timeMs, 200 * 86_400_000);
});

test('UCI sliced as DySAT: 13 steps of 10 days', () => {
  const uci = loadDataset('uci');
  assert.equal(uci.kind, 'link');
  if (uci.kind !== 'link') return;
  assert.equal(uci.numSteps, 13);
  assert.ok(uci.numNodes > 1800 && uci.numNodes <= 1899, `nodes ${uci.numNodes}`);
});

test('slicing rule: before origin has no step, tail folds into the final step', () => {
  const rule = {
    origin: '2000-01-01T00:00:00Z',
    granularity: '10d',
    foldAfter: '2000-02-15T00:00:00Z',
  };
  const c = compileSlicing(rule);
  const day = 86_400_000;
  const origin = Date.parse(rule.origin);
  assert.equal(stepOfTime(origin - 1, c), undefined);
  assert.equal(stepOfTime(origin, c), 0);
  assert.equal(stepOfTime(origin + 10 * day - 1, c), 0);
  assert.equal(stepOfTime(origin + 10 * day, c), 1);
  assert.equal(stepOfTime(Date.parse('2000-02-15T00:00:00Z'), c), 4); // day 45
  assert.equal(stepOfTime(Date.parse('2001-06-01T00:00:00Z'), c), 4); // folded
  const ds = sliceEvents(
    [
      { source: 'a', target: 'b', timeMs: origin - day },
      { source: 'b', target: 'c', timeMs: origin + 12 * day },
      { source: 'c', target: 'a', timeMs: origin + 400 * day },
    ],
    rule,
    { name: 't', directory: '.', relationName: 'msg' },
  );
  assert.equal(ds.numNodes, 3); // b, c, a (a appears again in a kept event)
  assert.deepEqual([...ds.facts], [0, 0, 1, 1, 1, 0, 2, 4]);
  assert.deepEqual(
    linkSnapshots(ds).map((s) => s.triples.length / 3),
    [0, 1, 0, 0, 1],
  );
  const yearly = compileSlicing({ origin: '2000-07-01T00:00:00Z', granularity: '1y' });
  assert.equal(stepOfTime(Date.parse('2001-06-30T00:00:00Z'), yearly), 0);
  assert.equal(stepOfTime(Date.parse('2001-07-01T00:00:00Z'), yearly), 1);
});

test('RE-NET directory with gz and plain files, names or ids, snapshots deduplicated and sorted', () => {
  const dir = mkdtempSync(join(tmpdir(), 'renet-'));
  writeFileSync(
    join(dir, 'train.txt.gz'),
    gzipSync('2\t0\t1\t0\t0\n0\t1\t2\t0\t0\n0\t1\t2\t0\t0\n1\t0\t0\t1\t0\n'),
  );
  writeFileSync(join(dir, 'valid.txt'), '0\t0\t1\t2\n');
  writeFileSync(join(dir, 'test.txt'), '1\t1\t2\t3\n');
  writeFileSync(join(dir, 'relation2id.txt'), 'likes\t0\nknows\t1\n');
  const ds = loadRenetDataset(dir, 'tiny');
  assert.equal(ds.numEntities, 3);
  assert.equal(ds.numRelations, 2);
  assert.equal(ds.relationNames[1], 'knows');
  const snaps = tkgSnapshots(ds, ['train', 'valid', 'test']);
  assert.deepEqual(
    snaps.map((s) => s.step),
    [0, 1, 2, 3],
  );
  assert.deepEqual([...snaps[0].triples], [0, 1, 2, 2, 0, 1]);
  const events = datasetFactEvents(ds, ['test']);
  assert.deepEqual(events, [{ subject: '1', relation: 'knows', object: '2', step: 3 }]);
  // named entities in the same layout
  const named = mkdtempSync(join(tmpdir(), 'renet-named-'));
  writeFileSync(join(named, 'train.txt'), 'alice\tknows\tbob\t0\nbob\tknows\tcarol\t1\n');
  writeFileSync(join(named, 'test.txt'), 'carol\tlikes\talice\t2\n');
  const nd = loadRenetDataset(named);
  assert.deepEqual(nd.entityNames, ['alice', 'bob', 'carol']);
  assert.deepEqual([...nd.splits.test!], [2, 1, 0, 2]);
  assert.ok(nd.notes.some((n) => n.includes('valid split not available')));
});

test('named fact files: TSV with steps, JSONL with timestamps', () => {
  const dir = mkdtempSync(join(tmpdir(), 'named-'));
  const tsv = join(dir, 'facts.tsv');
  writeFileSync(
    tsv,
    'subject\trelation\tobject\tstep\n' +
      Array.from({ length: 12 }, (_, t) => `a\tr\tb${t % 3}\t${t}`).join('\n'),
  );
  const events = readNamedFactFile(tsv);
  assert.equal(events.length, 12);
  assert.deepEqual(events[4], { subject: 'a', relation: 'r', object: 'b1', step: 4 });
  const ds = encodeNamedFacts(events, { name: 'facts', directory: dir });
  assert.equal(ds.splits.test!.length / 4, 1);
  assert.equal(ds.splits.valid!.length / 4, 1);
  assert.equal(ds.splits.train!.length / 4, 10);
  const jsonl = join(dir, 'facts.jsonl');
  writeFileSync(
    jsonl,
    [
      '{"subject":"x","relation":"r","object":"y","timestamp":"2020-01-01T05:00:00Z"}',
      '{"subject":"y","relation":"r","object":"x","timestamp":"2020-01-03T00:00:00Z"}',
    ].join('\n'),
  );
  const timed = readNamedFactFile(jsonl);
  const encoded = encodeNamedFacts(timed, {
    name: 'j',
    directory: dir,
    testSteps: 1,
    validSteps: 0,
  });
  assert.deepEqual([...encoded.splits.train!, ...encoded.splits.test!], [0, 0, 1, 0, 1, 0, 0, 2]);
});

test('YAGO loads fast with the RE-NET split sizes', () => {
  const t0 = performance.now();
  const yago = loadDataset('yago');
  const seconds = (performance.now() - t0) / 1000;
  assert.equal(yago.kind, 'tkg');
  if (yago.kind !== 'tkg') return;
  assert.equal(yago.numEntities, 10623);
  assert.equal(yago.numRelations, 10);
  assert.equal(yago.splits.train!.length / 4, 161540);
  assert.equal(yago.splits.valid!.length / 4, 19523);
  assert.equal(yago.splits.test!.length / 4, 20026);
  assert.ok(seconds < 5, `took ${seconds}s`);
});
