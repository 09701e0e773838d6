// The local JVM services the project starts itself (the Kafka broker, the schema registry): a detached `java` with
// its log in the service directory, recognised by pid and command line (so a reused pid is never mistaken for it),
// its log tail for error messages, and a stop by pid (SIGTERM, SIGKILL after a grace period).
// Owns: those process mechanics. Must not know what the service is (callers pass its marker and arguments).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** True when `pid` is alive and its command line holds `marker` and `dir` (no /proc, e.g. macOS: trust the pid). */
export function isJvmProcess(pid: number, dir: string, marker: string): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes(marker) && cmdline.includes(dir);
  } catch {
    return true;
  }
}

/** A JSON state file, or undefined when it is missing or unreadable. */
export function readJsonState<T>(file: string): T | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** The last `lines` lines of a log file (reads at most its last 64 KiB). */
export function logTail(file: string, lines = 30): string {
  if (!existsSync(file)) return '(no log)';
  const size = statSync(file).size;
  const length = Math.min(size, 64 * 1024);
  const buffer = Buffer.alloc(length);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buffer, 0, length, size - length);
  } finally {
    closeSync(fd);
  }
  return buffer.toString('utf8').split('\n').slice(-lines).join('\n');
}

/** Start `java args` detached in `cwd`, stdout and stderr appended to `logFile`; returns its pid (undefined: no spawn). */
export function spawnDetachedJava(
  args: string[],
  cwd: string,
  logFile: string,
): number | undefined {
  const logFd = openSync(logFile, 'a');
  const child = spawn('java', args, { detached: true, stdio: ['ignore', logFd, logFd], cwd });
  closeSync(logFd);
  child.unref();
  return child.pid;
}

/** SIGTERM `pid`, SIGKILL it after `graceMs`, and wait until `alive()` is false. */
export async function stopProcess(
  pid: number,
  alive: () => boolean,
  graceMs: number,
): Promise<void> {
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && alive()) await sleep(200);
  if (alive()) {
    process.kill(pid, 'SIGKILL');
    while (alive()) await sleep(100);
  }
}
