// Benchmark dispatcher: `npm run bench` runs every bench (one child process each, in the order below);
// `npm run bench -- <name> [--json] [flags]` runs one. Each bench lives in bench/<name>.ts and exports
// `run(args: string[]): Promise<Record<string, unknown>>`; it prints its own table, this writes the JSON result to
// bench/results/<name>.json (and prints it with --json). Benchmarks are not timed tests.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'main.ts')
  .map((f) => f.replace(/\.ts$/, ''));

// Quick ones first; train (a whole YAGO run) and link (10 seeds of Enron and UCI) take about 10 minutes each, scale
// (synthetic graphs to a million entities) about 15.
const order = ['ingest', 'serve', 'hybrid', 'train', 'link', 'scale'];
const [name, ...args] = process.argv.slice(2);
if (name === undefined || name.startsWith('--')) {
  if (name === '--help') {
    process.stderr.write(`usage: npm run bench [-- <${available.join('|')}> [--json] [flags]]\n`);
    process.exit(0);
  }
  const all = [
    ...order.filter((n) => available.includes(n)),
    ...available.filter((n) => !order.includes(n)),
  ];
  const failed: string[] = [];
  for (const bench of all) {
    process.stderr.write(`\n=== bench ${bench}\n`);
    const child = spawnSync(
      process.execPath,
      [...process.execArgv, fileURLToPath(import.meta.url), bench, ...process.argv.slice(2)],
      {
        stdio: 'inherit',
      },
    );
    if (child.status !== 0) failed.push(bench);
  }
  if (failed.length > 0) process.stderr.write(`failed: ${failed.join(', ')}\n`);
  process.exit(failed.length > 0 ? 1 : 0);
}
if (!available.includes(name)) {
  process.stderr.write(`usage: npm run bench -- <${available.join('|')}> [--json] [flags]\n`);
  process.exit(name && name !== '--help' ? 2 : 0);
}
const mod = (await import(join(here, `${name}.ts`))) as {
  run: (args: string[]) => Promise<Record<string, unknown>>;
};
const result = await mod.run(args);
const out = join(here, 'results', `${name}.json`);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(
  out,
  JSON.stringify({ bench: name, date: new Date().toISOString(), ...result }, null, 2) + '\n',
);
if (args.includes('--json')) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
process.stderr.write(`wrote ${out}\n`);
process.exit(0);
