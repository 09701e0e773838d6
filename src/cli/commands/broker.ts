// `tkg broker start|stop|status`: the project's local single-node Kafka (KRaft) broker. Wiring only; the logic is
// in src/kafka/local-broker.ts. Exit codes: 0 ok (status: running and reachable), 1 failure / not running, 2 usage.
import type { Command } from 'commander';
import { loadConfig } from '../../config/config.ts';
import { localBrokerStatus, startLocalBroker, stopLocalBroker } from '../../kafka/local-broker.ts';

interface BrokerFlags {
  port?: string;
  dir?: string;
  json?: boolean;
}

function print(json: boolean | undefined, data: object, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(data)}\n` : `${text}\n`);
}

export function register(program: Command): void {
  const broker = program
    .command('broker')
    .description(
      'start, stop or inspect the local single-node Kafka broker (jars from deploy/kafka, data in --dir)',
    );

  broker
    .command('start')
    .description(
      'format storage (first time), start the broker detached, wait until it accepts connections',
    )
    .option(
      '--port <n>',
      'listener port on 127.0.0.1; 0 picks a free port (TKG_BROKER_PORT, default 9092)',
    )
    .option(
      '--dir <path>',
      'broker directory: config, data, pid, log (TKG_BROKER_DIR, default .tkg/broker)',
    )
    .option('--json', 'print the broker state as JSON')
    .action(async (flags: BrokerFlags) => {
      const config = loadConfig({ brokerPort: flags.port, brokerDir: flags.dir });
      const state = await startLocalBroker({
        dir: config.brokerDir,
        port: config.brokerPort,
        onProgress: (line) => process.stderr.write(`${line}\n`),
      });
      print(
        flags.json,
        state,
        `broker running: pid ${state.pid}, KAFKA_BROKERS=${state.bootstrap}, log ${state.logFile}`,
      );
    });

  broker
    .command('stop')
    .description('stop the broker by pid (SIGTERM, then SIGKILL after 20 s); data is kept')
    .option('--dir <path>', 'broker directory (TKG_BROKER_DIR, default .tkg/broker)')
    .option('--json', 'print the result as JSON')
    .action(async (flags: BrokerFlags) => {
      const config = loadConfig({ brokerDir: flags.dir });
      const result = await stopLocalBroker(config.brokerDir);
      print(
        flags.json,
        result,
        result.stopped ? `broker stopped (pid ${result.pid})` : 'broker was not running',
      );
    });

  broker
    .command('status')
    .description(
      'is the broker process alive and does it accept connections (exit 1 when not running)',
    )
    .option('--dir <path>', 'broker directory (TKG_BROKER_DIR, default .tkg/broker)')
    .option('--json', 'print the status as JSON')
    .action(async (flags: BrokerFlags) => {
      const config = loadConfig({ brokerDir: flags.dir });
      const status = await localBrokerStatus(config.brokerDir);
      const text = status.running
        ? `broker running: pid ${status.state?.pid}, KAFKA_BROKERS=${status.state?.bootstrap}, ${status.reachable ? 'reachable' : 'NOT reachable'}`
        : `broker not running (dir ${status.dir})`;
      print(flags.json, status, text);
      if (!status.running || !status.reachable) process.exitCode = 1;
    });
}
