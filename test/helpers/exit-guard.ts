// For test files that spawn processes and talk to the broker: once the file's tests have ended, the file's process
// must exit. If something still holds the event loop (a socket, a pipe, a timer) after a grace period, say what it is
// on stderr and exit with the tests' outcome, instead of hanging the runner until its file timeout.
import { after } from 'node:test';

/** Register the guard (call once, at the top level of a test file). */
export function exitAfterTests(file: string, graceMs = 20_000): void {
  after(() => {
    setTimeout(() => {
      process.stderr.write(
        `${file}: still running ${graceMs} ms after its tests ended, held by: ` +
          `${process.getActiveResourcesInfo().join(', ')}; exiting\n`,
      );
      process.exit(process.exitCode ?? 0);
    }, graceMs).unref();
  });
}
