// Dataset file access. Owns: reading plain or gzipped text files and locating dataset directories.
// Must not import kafkajs, src/kafka, src/train or tfjs (loaders are shared by eval, publish and tests).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../core/errors.ts';

/** The project root (the directory holding package.json), independent of the working directory. */
export const projectRoot: string = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Reads a text file; `.gz` files are gunzipped. */
export function readText(path: string): string {
  const bytes = readFileSync(path);
  return (path.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('utf8');
}

/** `<dir>/<base>` or `<dir>/<base>.gz`, whichever exists (plain first); undefined if neither. */
export function findMaybeGzipped(dir: string, base: string): string | undefined {
  for (const candidate of [join(dir, base), join(dir, `${base}.gz`)]) {
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** Built-in dataset names and where each ships in the repository (data/<name>, with a PROVENANCE.md). */
export const builtinDatasets: Record<string, readonly string[]> = {
  yago: ['data/yago'],
  wiki: ['data/wiki'],
  icews14: ['data/icews14'],
  enron: ['data/enron'],
  uci: ['data/uci'],
};

/**
 * Resolves a dataset name (yago, wiki, enron, uci; relative to the project root) or any directory
 * (absolute, or relative to the working directory) to an existing directory.
 */
export function resolveDatasetDirectory(nameOrPath: string, root: string = projectRoot): string {
  const builtin = builtinDatasets[nameOrPath.toLowerCase()];
  if (builtin !== undefined) {
    for (const relative of builtin) {
      const dir = resolve(root, relative);
      if (existsSync(dir) && statSync(dir).isDirectory()) return dir;
    }
    throw new ConfigError(
      `dataset ${nameOrPath}: none of ${builtin.map((d) => resolve(root, d)).join(', ')} exists; ` +
        `copy the dataset there or pass --dataset <directory>`,
    );
  }
  const dir = isAbsolute(nameOrPath) ? nameOrPath : resolve(process.cwd(), nameOrPath);
  if (!existsSync(dir)) {
    throw new ConfigError(
      `dataset ${nameOrPath}: not a known name (${Object.keys(builtinDatasets).join(', ')}) and ${dir} does not exist`,
    );
  }
  return dir;
}
