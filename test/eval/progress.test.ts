// Unit: `tkg eval`'s progress lines. The trainer's per-step lines and the protocol's rate / ETA line are throttled
// apart, so a long NLSM observe phase shows its ETA (it used to be suppressed behind every training line).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { progressPrinter } from '../../src/cli/commands/eval.ts';

test('progress: a training line does not suppress the next observe (ETA) line; each stream is throttled to one line per 2 s', () => {
  const lines: string[] = [];
  const progress = progressPrinter(true, (line) => lines.push(line));
  progress('train step 0', false, 'train');
  progress('observe 1/300, ETA 1700s');
  progress('train step 1', false, 'train'); // within 2 s of the last training line: dropped
  progress('observe 2/300, ETA 1690s'); // within 2 s of the last observe line: dropped
  progress('done', true); // forced lines always print
  assert.deepEqual(lines, ['train step 0', 'observe 1/300, ETA 1700s', 'done']);
  const quiet: string[] = [];
  progressPrinter(false, (line) => quiet.push(line))('anything', true);
  assert.deepEqual(quiet, []);
});
