// What a fresh clone holds: every dataset the product, its tests and the README's tables use ships in data/ with a
// PROVENANCE.md, no code reads the shared folder beside the project (a user's clone has none), the npm install
// runs no dependency's install script (no non-registry downloads, e.g. onnxruntime-node's CUDA files), and the
// sources type-check, and each source file keeps to one job (at most 500 lines, a header comment).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { arch, platform } from 'node:os';
import { join } from 'node:path';
import { builtinDatasets, projectRoot } from '../../src/datasets/files.ts';
import { loadDataset } from '../../src/datasets/index.ts';

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (/\.(ts|js|mjs|cjs|sh|py)$/.test(entry)) out.push(path);
  }
  return out;
}

test('no code or test reads the shared folder outside the repository', () => {
  const forbidden = ['..', 'shared'].join('/'); // spelled apart so this file does not match itself
  const offenders = ['src', 'test', 'bench', '.ci']
    .flatMap((dir) => sourceFiles(join(projectRoot, dir)))
    .filter((file) => {
      const text = readFileSync(file, 'utf8');
      return text.includes(forbidden) || text.includes(['shared', 'datasets'].join('/'));
    });
  assert.deepEqual(offenders, []);
});

test('one job per file: no source file is over 500 lines, and each starts with its header comment', () => {
  const files = sourceFiles(join(projectRoot, 'src')).filter((f) => f.endsWith('.ts'));
  const long = files
    .map((file) => ({ file, lines: readFileSync(file, 'utf8').split('\n').length }))
    .filter((f) => f.lines > 500)
    .map((f) => `${f.file.slice(projectRoot.length + 1)}: ${f.lines} lines`);
  assert.deepEqual(long, [], 'split these by job');
  const headerless = files
    .filter((file) => !readFileSync(file, 'utf8').startsWith('//'))
    .map((file) => file.slice(projectRoot.length + 1));
  assert.deepEqual(headerless, [], 'start each file with what it owns and what it must not touch');
});

test('every built-in dataset ships in data/ with its provenance and loads', () => {
  for (const [name, [dir]] of Object.entries(builtinDatasets)) {
    assert.ok(existsSync(join(projectRoot, dir, 'PROVENANCE.md')), `${dir}/PROVENANCE.md`);
    const dataset = loadDataset(name);
    assert.ok(
      dataset.kind === 'tkg' ? dataset.numEntities > 0 : dataset.numNodes > 0,
      `${name} is not empty`,
    );
  }
  assert.deepEqual(Object.keys(builtinDatasets).sort(), [
    'enron',
    'icews14',
    'uci',
    'wiki',
    'yago',
  ]);
});

test('npm runs no dependency install script (.npmrc ignore-scripts, read by npm 10 and 11)', () => {
  const npmrc = readFileSync(join(projectRoot, '.npmrc'), 'utf8');
  assert.match(npmrc, /^ignore-scripts=true$/m);
  // onnxruntime-node's CPU library ships in the package: nothing its postinstall would fetch is needed.
  const ort = join(
    projectRoot,
    'node_modules',
    'onnxruntime-node',
    'bin',
    'napi-v6',
    platform(),
    arch(),
  );
  assert.ok(existsSync(join(ort, 'onnxruntime_binding.node')));
  assert.ok(!existsSync(join(ort, 'libonnxruntime_providers_cuda.so')), 'no CUDA files downloaded');
});

test('the sources type-check (tsc --noEmit)', { timeout: 180_000 }, () => {
  const tsc = join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc');
  const run = spawnSync(process.execPath, [tsc, '--noEmit', '-p', projectRoot], {
    encoding: 'utf8',
  });
  assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
});
