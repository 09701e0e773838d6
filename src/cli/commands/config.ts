// `tkg config`: the effective configuration and where each value came from (flag, environment, default);
// `--markdown` prints the reference table the README carries (a test keeps the two equal).
import type { Command } from 'commander';
import { configSchema, envNames, loadConfig, type TkgConfig } from '../../config/config.ts';
import { configKeyHelp, kebabCase } from '../config-flags.ts';

type Source = 'flag' | 'env' | 'default';

export interface ConfigRow {
  key: keyof TkgConfig;
  flag: string;
  env: string;
  value: unknown;
  default: unknown;
  source: Source;
  help: string;
}

/** Pure: one row per key of the effective configuration. `given` holds the environment as the process started. */
export function configRows(
  config: TkgConfig,
  givenEnv: NodeJS.ProcessEnv,
  flagEnv: NodeJS.ProcessEnv,
): ConfigRow[] {
  const defaults = loadConfig({}, {});
  return (Object.keys(configSchema.shape) as (keyof TkgConfig)[]).map((key) => {
    const env = envNames[key];
    const fromFlag = flagEnv[env] !== undefined && flagEnv[env] !== givenEnv[env];
    const fromEnv = !fromFlag && givenEnv[env] !== undefined && givenEnv[env] !== '';
    return {
      key,
      flag: `--${kebabCase(key)}`,
      env,
      // secrets are shown as set or unset, never printed
      value: /password/i.test(key) && config[key] !== undefined ? '(set)' : config[key],
      default: defaults[key],
      source: fromFlag ? 'flag' : fromEnv ? 'env' : 'default',
      help: configKeyHelp(key),
    };
  });
}

const cell = (value: unknown): string => (value === undefined ? '(unset)' : `\`${String(value)}\``);

/** Pure: the README's configuration reference (markdown table over every key). */
export function configMarkdown(rows: readonly ConfigRow[]): string {
  const lines = ['| flag | environment | default | meaning |', '|---|---|---|---|'];
  for (const row of rows)
    lines.push(
      `| \`${row.flag}\` | \`${row.env}\` | ${cell(row.default)} | ${row.help.replaceAll('|', '\\|')} |`,
    );
  return lines.join('\n');
}

export function register(program: Command): void {
  // The environment before any derived flag wrote into it (the preAction hook runs after this snapshot).
  const givenEnv = { ...process.env };
  program
    .command('config')
    .description(
      'show the effective configuration, each value with its source (flag, environment, default)',
    )
    .option(
      '--markdown',
      'print the reference table of every key (flag, environment variable, default, meaning)',
    )
    .option('--json', 'print the effective configuration as JSON')
    .action((flags: { markdown?: boolean; json?: boolean }) => {
      const rows = configRows(loadConfig(), givenEnv, process.env);
      if (flags.markdown) {
        process.stdout.write(`${configMarkdown(rows)}\n`);
      } else if (flags.json) {
        process.stdout.write(
          `${JSON.stringify(Object.fromEntries(rows.map((r) => [r.key, { value: r.value, source: r.source }])), null, 2)}\n`,
        );
      } else {
        const width = Math.max(...rows.map((r) => r.key.length));
        for (const r of rows)
          process.stdout.write(
            `${r.key.padEnd(width)}  ${String(r.value ?? '(unset)').padEnd(24)} ${r.source.padEnd(7)} ${r.env}\n`,
          );
      }
    });
}
