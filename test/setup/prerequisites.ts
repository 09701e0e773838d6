// What the test suite needs besides node_modules, made ready by the test command itself (test/run.ts), so a
// new user's `npm test` needs no hidden set-up:
// - the Kafka broker's jars (Maven Central, deploy/kafka) unless KAFKA_BROKERS names a cluster;
// - Prometheus and promtool (Debian's `prometheus` package, installed when this user may run apt-get as root);
// - a Python with onnxruntime, numpy, confluent-kafka and fastavro (PyPI) for the cross-runtime and interop tests.
// Each step either succeeds or fails within seconds with one line that names the command to run.
// Owns: detecting and installing those prerequisites. Must not start services (the runner does) or run tests.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBrokerJars, projectRoot } from '../../src/kafka/local-broker.ts';

export class PrerequisiteError extends Error {}

const here = join(projectRoot, 'test', 'setup');
const log = (line: string) => process.stderr.write(`test setup: ${line}\n`);

function succeeds(command: string, args: string[], env?: NodeJS.ProcessEnv): boolean {
  const result = spawnSync(command, args, { stdio: 'ignore', env: env ?? process.env });
  return !result.error && result.status === 0;
}

/** True when this process may run apt-get as root (root itself, or password-less sudo). */
function canInstallPackages(): boolean {
  if (!succeeds('apt-get', ['--version'])) return false;
  if (process.getuid?.() === 0) return true;
  return succeeds('sudo', ['-n', 'true']);
}

/** Kafka's jars in deploy/kafka/lib (fetched with Maven on first use). */
export function ensureKafka(): void {
  if (process.env.KAFKA_BROKERS) return;
  if (!succeeds('java', ['-version']))
    throw new PrerequisiteError(
      'java not found: the test broker needs a JDK 17 (Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless), or set KAFKA_BROKERS to a cluster',
    );
  try {
    ensureBrokerJars(log);
  } catch (error) {
    throw new PrerequisiteError((error as Error).message);
  }
}

/** prometheus and promtool on PATH, installed from Debian's package when possible. */
export function ensurePrometheus(): void {
  if (succeeds('promtool', ['--version']) && succeeds('prometheus', ['--version'])) return;
  const command = 'sudo apt-get install -y --no-install-recommends prometheus';
  if (!canInstallPackages())
    throw new PrerequisiteError(
      `prometheus and promtool are needed by the deploy-kit and scrape tests: run \`${command}\` (or bash test/setup/install-prometheus.sh as root), then npm test again`,
    );
  log(
    "installing Debian's prometheus package (promtool and prometheus; its service stays stopped)",
  );
  const result = spawnSync('bash', [join(here, 'install-prometheus.sh')], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (result.status !== 0 || !succeeds('promtool', ['--version']))
    throw new PrerequisiteError(
      `installing prometheus failed (exit ${result.status}); run \`${command}\` by hand, then npm test again`,
    );
}

// confluent_kafka.schema_registry.avro: the [avro,schemaregistry] extras (the schema-registry interop tests)
const pythonModules = [
  'onnxruntime',
  'numpy',
  'confluent_kafka',
  'confluent_kafka.schema_registry.avro',
  'fastavro',
];

function importsAll(python: string): boolean {
  return succeeds(python, ['-c', `import ${pythonModules.join(', ')}`]);
}

/**
 * The Python interpreter the tests use (test/helpers/python.ts reads TKG_TEST_PYTHON): python3 from PATH when it
 * already has every package, else a virtual environment in .tkg/python with test/setup/python-requirements.txt.
 */
export function ensurePython(): string {
  if (process.env.TKG_TEST_PYTHON && importsAll(process.env.TKG_TEST_PYTHON))
    return process.env.TKG_TEST_PYTHON;
  if (!succeeds('python3', ['--version']))
    throw new PrerequisiteError(
      'python3 not found: the cross-runtime tests need Python 3 (Debian/Ubuntu: sudo apt-get install -y python3 python3-venv)',
    );
  if (importsAll('python3')) return 'python3';
  const venv = join(projectRoot, '.tkg', 'python');
  const python = join(venv, 'bin', 'python3');
  const requirements = join(here, 'python-requirements.txt');
  const wanted = createHash('sha256').update(readFileSync(requirements)).digest('hex');
  const stamp = join(venv, '.requirements.sha256');
  if (existsSync(python) && existsSync(stamp) && readFileSync(stamp, 'utf8') === wanted)
    if (importsAll(python)) return python;
  if (!existsSync(python)) {
    log('creating a Python virtual environment in .tkg/python');
    const made = spawnSync('python3', ['-m', 'venv', venv], { encoding: 'utf8' });
    if (made.status !== 0) {
      rmSync(venv, { recursive: true, force: true });
      throw new PrerequisiteError(
        `python3 -m venv failed (${(made.stderr || '').trim().split('\n').pop()}): run \`sudo apt-get install -y python3-venv\`, or \`python3 -m pip install -r test/setup/python-requirements.txt\`, then npm test again`,
      );
    }
  }
  log(`installing ${pythonModules.join(', ')} from PyPI into .tkg/python (once)`);
  const pip = spawnSync(
    python,
    ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '-r', requirements],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  if (pip.status !== 0 || !importsAll(python))
    throw new PrerequisiteError(
      `pip install -r test/setup/python-requirements.txt into .tkg/python failed (exit ${pip.status}); check that PyPI is reachable, then npm test again`,
    );
  writeFileSync(stamp, wanted);
  return python;
}
