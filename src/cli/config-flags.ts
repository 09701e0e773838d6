// Every configuration key as a flag on every verb that reads the configuration. Owns: deriving
// `--<kebab-key> <value>` options from src/config's schema, and applying them. A verb's own flag for a
// key (e.g. `tkg run --model`) is left alone; the derived flag is added only where the verb has none.
// Precedence stays flag > environment > default: a derived flag, when given, sets the key's environment
// variable for this process (and the worker processes it starts) before the verb's action runs, and the
// verb's loadConfig() reads it from there.
import { Option, type Command } from 'commander';
import { configSchema, envNames, type TkgConfig } from '../config/config.ts';

export const configFlagsHeading =
  'Configuration (every key; flag > environment variable > default):';

/** `trainEpochsPerWindow` -> `train-epochs-per-window`, `K` -> `k`. */
export function kebabCase(key: string): string {
  return key.replace(/(?<=[a-z0-9])[A-Z]/g, (letter) => `-${letter}`).toLowerCase();
}

/** Key description without its leading environment-variable token. */
export function configKeyHelp(key: keyof TkgConfig): string {
  const description = configSchema.shape[key].description ?? '';
  const colon = description.indexOf(':');
  return colon < 0 ? '' : description.slice(colon + 1).trim();
}

const derivedKeys = new WeakMap<Command, Map<string, keyof TkgConfig>>();

/** Add a derived flag for every configuration key the verb has no flag for. */
export function addConfigFlags(command: Command): void {
  const taken = new Set(command.options.map((option) => option.long));
  const added = new Map<string, keyof TkgConfig>(); // option attribute name -> config key
  for (const key of Object.keys(configSchema.shape) as (keyof TkgConfig)[]) {
    const long = `--${kebabCase(key)}`;
    if (taken.has(long) || taken.has(`--no-${kebabCase(key)}`)) continue;
    const help = configKeyHelp(key);
    const fallback = configSchema.shape[key].safeParse(undefined);
    const defaultText =
      fallback.success && fallback.data !== undefined ? `, default ${String(fallback.data)}` : '';
    const option = new Option(
      `${long} <value>`,
      `${help}${help ? ' ' : ''}[${envNames[key]}${defaultText}]`,
    ).helpGroup(configFlagsHeading);
    command.addOption(option);
    added.set(option.attributeName(), key);
  }
  derivedKeys.set(command, added);
}

/** Copy the derived flags given on the command line into their environment variables. */
export function applyConfigFlags(command: Command, env: NodeJS.ProcessEnv = process.env): void {
  const added = derivedKeys.get(command);
  if (!added) return;
  for (const [attribute, key] of added) {
    const value: unknown = command.getOptionValue(attribute);
    if (value !== undefined) env[envNames[key]] = String(value);
  }
}
