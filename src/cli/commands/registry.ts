// `tkg registry start|stop|status`: the project's local schema registry (Apicurio Registry, Confluent-compatible API,
// in-memory storage). Wiring only; the logic is in src/kafka/local-registry.ts. Exit codes: 0 ok (status: running
// and answering), 1 failure / not running, 2 usage.
import type { Command } from 'commander';
import {
  localRegistryStatus,
  startLocalRegistry,
  stopLocalRegistry,
} from '../../kafka/local-registry.ts';

interface RegistryFlags {
  port?: string;
  dir?: string;
  json?: boolean;
}

function print(json: boolean | undefined, data: object, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(data)}\n` : `${text}\n`);
}

const defaultDir = '.tkg/registry';

export function register(program: Command): void {
  const registry = program
    .command('registry')
    .description(
      'start, stop or inspect the local schema registry (Apicurio Registry from deploy/registry, Confluent-compatible API)',
    );

  registry
    .command('start')
    .description('start the registry detached and wait until its Confluent-compatible API answers')
    .option('--port <n>', 'HTTP port on 127.0.0.1; 0 picks a free port (default 8081)')
    .option('--dir <path>', `registry directory: state and log (default ${defaultDir})`)
    .option('--json', 'print the registry state as JSON')
    .action(async (flags: RegistryFlags) => {
      const port = flags.port === undefined ? undefined : Number(flags.port);
      const state = await startLocalRegistry({
        dir: flags.dir ?? defaultDir,
        port,
        onProgress: (line) => process.stderr.write(`${line}\n`),
      });
      print(
        flags.json,
        state,
        `schema registry running: pid ${state.pid}, TKG_SCHEMA_REGISTRY_URL=${state.url}, log ${state.logFile}`,
      );
    });

  registry
    .command('stop')
    .description(
      'stop the registry by pid (its storage is in memory: registered schemas go with it)',
    )
    .option('--dir <path>', `registry directory (default ${defaultDir})`)
    .option('--json', 'print the result as JSON')
    .action(async (flags: RegistryFlags) => {
      const result = await stopLocalRegistry(flags.dir ?? defaultDir);
      print(
        flags.json,
        result,
        result.stopped
          ? `schema registry stopped (pid ${result.pid})`
          : 'schema registry was not running',
      );
    });

  registry
    .command('status')
    .description('is the registry alive and does its API answer (exit 1 when not)')
    .option('--dir <path>', `registry directory (default ${defaultDir})`)
    .option('--json', 'print the status as JSON')
    .action(async (flags: RegistryFlags) => {
      const status = await localRegistryStatus(flags.dir ?? defaultDir);
      const text = status.running
        ? `schema registry running: pid ${status.state?.pid}, TKG_SCHEMA_REGISTRY_URL=${status.state?.url}, ${status.reachable ? 'answering' : 'NOT answering'}`
        : `schema registry not running (dir ${status.dir})`;
      print(flags.json, status, text);
      if (!status.running || !status.reachable) process.exitCode = 1;
    });
}
