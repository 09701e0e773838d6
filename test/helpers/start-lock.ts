// A lock file that keeps two test processes (node runs each test file in its own) from starting the same shared
// service at once: the shared broker (broker.ts) and the shared schema registry (registry.ts). A lock older than
// `staleMs` was left by a crashed starter and is taken over.
import { closeSync, mkdirSync, openSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function withStartLock<T>(
  lock: string,
  limits: { waitMs: number; staleMs: number; what: string },
  work: () => Promise<T>,
): Promise<T> {
  mkdirSync(dirname(lock), { recursive: true });
  const deadline = Date.now() + limits.waitMs;
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx'));
      break;
    } catch {
      let age: number;
      try {
        age = Date.now() - statSync(lock).mtimeMs;
      } catch {
        continue; // released between open and stat
      }
      if (age > limits.staleMs) rmSync(lock, { force: true }); // a crashed starter left it
      if (Date.now() > deadline)
        throw new Error(
          `${limits.what} lock ${lock} held for over ${Math.round(limits.waitMs / 60_000)} minutes; delete it if no test runs`,
        );
      await sleep(250);
    }
  }
  try {
    return await work();
  } finally {
    rmSync(lock, { force: true });
  }
}
