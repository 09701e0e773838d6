// Spawning `tkg` / `npm run demo` as a user would, collecting output, for the end-to-end tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { projectRoot } from '../../src/kafka/local-broker.ts';

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves when the process exits. */
  finished: Promise<Finished>;
  /** Resolves when `pattern` appears on stdout or stderr (rejects if the process exits first or after timeoutMs). */
  waitForOutput: (pattern: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>;
}

/** Start `command args` in the project root with `env` (merged over process.env; undefined values are removed). */
export function start(
  command: string,
  args: string[],
  env: Record<string, string | undefined> = {},
): Running {
  const merged: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) delete merged[key];
    else merged[key] = value;
  }
  const child = spawn(command, args, {
    cwd: projectRoot,
    env: merged,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const finished = new Promise<Finished>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  let exited = false;
  void finished.then(() => (exited = true));
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    finished,
    async waitForOutput(pattern, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = stdout.match(pattern) ?? stderr.match(pattern);
        if (match) return match;
        if (exited)
          throw new Error(
            `process exited before printing ${pattern}\nstdout:\n${stdout.slice(-3000)}\nstderr:\n${stderr.slice(-3000)}`,
          );
        if (Date.now() > deadline)
          throw new Error(
            `no ${pattern} after ${timeoutMs} ms\nstdout:\n${stdout.slice(-3000)}\nstderr:\n${stderr.slice(-3000)}`,
          );
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}

/** `tkg <args>` through tsx (what `npm run tkg -- <args>` runs). */
export function startTkg(args: string[], env: Record<string, string | undefined> = {}): Running {
  return start(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], env);
}

/** Kill a still-running child (test cleanup). */
export function killQuietly(running: Running | undefined): void {
  if (running && running.child.exitCode === null && running.child.signalCode === null)
    running.child.kill('SIGKILL');
}
