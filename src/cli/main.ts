// The `tkg` command line. Owns: wiring verbs to stages; holds no logic of its own.
// Each verb lives in src/cli/commands/<verb>.ts and exports `register(program: Command)`.
// Exit codes: 0 ok, 1 runtime failure, 2 usage / configuration error.
import { Command } from 'commander';
import { TkgError } from '../core/errors.ts';
import { addConfigFlags, applyConfigFlags } from './config-flags.ts';
import { register as brokerVerb } from './commands/broker.ts';
import { register as configVerb } from './commands/config.ts';
import { register as evalVerb } from './commands/eval.ts';
import { register as ingestVerb } from './commands/ingest.ts';
import { register as publishVerb } from './commands/publish.ts';
import { register as queryVerb } from './commands/query.ts';
import { register as registryVerb } from './commands/registry.ts';
import { register as runVerb } from './commands/run.ts';
import { register as serveVerb } from './commands/serve.ts';
import { register as shardVerb } from './commands/shard.ts';
import { register as trainVerb } from './commands/train.ts';

/** Every verb, in help order (src/cli/commands/<verb>.ts). */
const verbs = [
  brokerVerb,
  configVerb,
  evalVerb,
  ingestVerb,
  publishVerb,
  queryVerb,
  registryVerb,
  runVerb,
  serveVerb,
  shardVerb,
  trainVerb,
];

export async function buildProgram(): Promise<Command> {
  const program = new Command('tkg')
    .description('tkg-stream: temporal knowledge-graph streaming processor (NLSM on Kafka)')
    .showHelpAfterError()
    .exitOverride();
  for (const register of verbs) register(program);
  // Every configuration key is a flag on every verb (src/cli/config-flags.ts).
  const leaves = (command: Command): Command[] =>
    command.commands.length === 0 ? [command] : command.commands.flatMap(leaves);
  for (const verb of program.commands.flatMap(leaves)) addConfigFlags(verb);
  program.hook('preAction', (_program, actionCommand) => applyConfigFlags(actionCommand));
  return program;
}

async function main(): Promise<void> {
  const program = await buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (
      code === 'commander.helpDisplayed' ||
      code === 'commander.version' ||
      code === 'commander.help'
    ) {
      process.exitCode = 0;
      return;
    }
    if (typeof code === 'string' && code.startsWith('commander.')) {
      process.exitCode = 2;
      return;
    }
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`tkg: ${message}\n`);
    process.exitCode = error instanceof TkgError && error.reason === 'config' ? 2 : 1;
  }
}

if (process.argv[1] && /(main\.ts|tkg(\.js)?)$/.test(process.argv[1])) {
  await main();
}
