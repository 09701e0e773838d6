// Benchmark dispatcher: `npm run bench -- <name> [--json] [flags]`. Each bench lives in bench/<name>.ts and exports
// `run(args: string[]): Promise<Record<string, unknown>>`; it prints its own table, this writes the JSON result to
// bench/results/<name>.json (and prints it with --json). Benchmarks are not timed tests.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'main.ts')
  .map((f) => f.replace(/\.ts$/, ''));

const [name, ...args] = process.argv.slice(2);
if (!name || name === '--help' || !available.includes(name)) {
  process.stderr.write(`usage: npm run bench -- <${available.join('|')}> [--json] [flags]\n`);
  process.exit(name && name !== '--help' ? 2 : 0);
}
const mod = (await import(join(here, `${name}.ts`))) as {
  run: (args: string[]) => Promise<Record<string, unknown>>;
};
const result = await mod.run(args);
const out = join(here, 'results', `${name}.json`);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify({ bench: name, date: new Date().toISOString(), ...result }, null, 2) + '\n');
if (args.includes('--json')) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
process.stderr.write(`wrote ${out}\n`);
process.exit(0);
