// Structure of the deploy kit without a Docker engine (none on the CI machine): deploy/compose.yaml is
// parsed and checked service by service, every file it mounts or builds from must exist, the Prometheus
// targets and Grafana provisioning must point at compose services, and the Dockerfile must build the
// image from files that exist and dependencies that `npm ci --omit=dev` installs.
// Not checked here (needs Docker): that the images pull and the stack starts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve as resolvePath } from 'node:path';
import { deployDir, prometheusDir, readDashboard, readYaml, repoRoot } from './deploy-files.ts';
import { topicNames } from '../../src/kafka/topics.ts';

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile?: string };
  command?: string[] | string;
  entrypoint?: string[] | string;
  environment?: Record<string, string | number | boolean>;
  volumes?: string[];
  ports?: string[];
  expose?: Array<string | number>;
  depends_on?: Record<string, { condition: string }> | string[];
  deploy?: { replicas?: number };
  profiles?: string[];
  healthcheck?: { test: string[] | string };
}
interface Compose {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

const compose = readYaml<Compose>(join(deployDir, 'compose.yaml'));
const services = compose.services;
const TKG_STAGES = ['ingest', 'train', 'serve', 'serve-steps'];
/** The "sharded" profile's services: two shard replicas and a front over them. */
const SHARDED = ['shard-0', 'shard-1', 'serve-front'];
/** Every user-facing topic (SPEC section 4), as the code names them; tkg.snapshots is created by tkg ingest. */
const SPEC_TOPICS = Object.values(topicNames('tkg'));

function env(service: string): Record<string, string> {
  return Object.fromEntries(
    Object.entries(services[service].environment ?? {}).map(([k, v]) => [k, String(v)]),
  );
}
function commandOf(service: string): string[] {
  const command = services[service].command ?? [];
  return Array.isArray(command) ? command : command.split(/\s+/);
}
/** Bind mounts (host path relative to deploy/) and named-volume mounts of a service. */
function mounts(service: string): { source: string; target: string; bind: boolean }[] {
  return (services[service].volumes ?? []).map((spec) => {
    const [source, target] = spec.split(':');
    return { source, target, bind: source.startsWith('.') || source.startsWith('/') };
  });
}

test('compose: Kafka runs in KRaft mode (apache/kafka 3.9.x), no ZooKeeper, a valid cluster id', () => {
  const kafka = services.kafka;
  assert.match(kafka.image ?? '', /^apache\/kafka:3\.9\.\d+$/);
  const e = env('kafka');
  assert.deepEqual(e.KAFKA_PROCESS_ROLES.split(',').sort(), ['broker', 'controller']);
  const controllerPort = /CONTROLLER:\/\/[^,]*:(\d+)/.exec(e.KAFKA_LISTENERS)?.[1];
  assert.ok(controllerPort, `no CONTROLLER listener in ${e.KAFKA_LISTENERS}`);
  assert.equal(e.KAFKA_CONTROLLER_QUORUM_VOTERS, `${e.KAFKA_NODE_ID}@kafka:${controllerPort}`);
  assert.equal(e.KAFKA_CONTROLLER_LISTENER_NAMES, 'CONTROLLER');
  for (const name of e.KAFKA_LISTENERS.split(',').map((l) => l.split(':')[0])) {
    assert.match(
      e.KAFKA_LISTENER_SECURITY_PROTOCOL_MAP,
      new RegExp(`(^|,)${name}:`),
      `listener ${name} has no protocol`,
    );
  }
  // KRaft cluster ids are 16 bytes, base64url without padding (22 characters).
  assert.equal(
    Buffer.from(e.CLUSTER_ID, 'base64url').length,
    16,
    `CLUSTER_ID ${e.CLUSTER_ID} is not a KRaft cluster id`,
  );
  assert.equal(e.KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR, '1');
  assert.ok(!Object.keys(services).some((name) => /zookeeper/i.test(name)));
  assert.ok(!Object.keys(e).some((key) => /ZOOKEEPER/.test(key)));
  assert.ok(kafka.healthcheck, 'kafka needs a healthcheck (kafka-init waits for service_healthy)');
  assert.ok(
    mounts('kafka').some((m) => !m.bind && m.target === e.KAFKA_LOG_DIRS),
    'Kafka log dir should be a named volume',
  );
});

test('compose: kafka-init creates every topic of SPEC section 4; tkg.models is compacted with large records', () => {
  const script = commandOf('kafka-init').join('\n');
  const created = new Set<string>();
  for (const match of script.matchAll(/for topic in ([^;]+);/g))
    for (const t of match[1].trim().split(/\s+/)) created.add(`tkg.${t}`);
  for (const match of script.matchAll(/--topic (tkg\.[a-z.]+)/g)) created.add(match[1]);
  assert.deepEqual([...created].sort(), [...SPEC_TOPICS].sort());
  assert.match(
    script,
    /--topic tkg\.models[^\n]*\\\n[^\n]*cleanup\.policy=compact[^\n]*max\.message\.bytes=(\d+)/,
  );
  const modelBytes = Number(/max\.message\.bytes=(\d+)/.exec(script)?.[1]);
  assert.ok(
    modelBytes <= Number(env('kafka').KAFKA_MESSAGE_MAX_BYTES) && modelBytes >= 16 * 1024 * 1024,
  );
  assert.match(script, /--if-not-exists/);
  assert.deepEqual(services['kafka-init'].depends_on, { kafka: { condition: 'service_healthy' } });
});

test('compose: a Confluent-compatible schema registry (the Apicurio Registry deploy/registry runs) and every tkg service pointed at it', () => {
  const registry = services.registry;
  assert.ok(registry, 'service registry missing');
  const pom = readFileSync(join(deployDir, 'registry', 'pom.xml'), 'utf8');
  const version = /<apicurio.version>([^<]+)</.exec(pom)?.[1];
  assert.equal(
    registry.image,
    `apicurio/apicurio-registry:${version}`,
    'the same version as deploy/registry',
  );
  for (const stage of TKG_STAGES)
    assert.equal(env(stage).TKG_SCHEMA_REGISTRY_URL, 'http://registry:8080/apis/ccompat/v7');
});

test('compose: ingest, train, serve are built from the root Dockerfile with KAFKA_BROKERS; serve has 2 replicas', () => {
  const advertised = /PLAINTEXT:\/\/([^,]+)/.exec(env('kafka').KAFKA_ADVERTISED_LISTENERS)?.[1];
  for (const stage of TKG_STAGES) {
    const service = services[stage];
    assert.ok(service, `service ${stage} missing`);
    assert.ok(service.build, `${stage} must be built from the repository`);
    assert.equal(
      resolvePath(deployDir, service.build.context),
      repoRoot,
      `${stage}: build context is not the repo root`,
    );
    assert.ok(existsSync(join(repoRoot, service.build.dockerfile ?? 'Dockerfile')));
    assert.equal(commandOf(stage)[0], stage === 'serve-steps' ? 'serve' : stage);
    const e = env(stage);
    assert.equal(
      e.KAFKA_BROKERS,
      advertised,
      `${stage}: KAFKA_BROKERS must be the advertised in-network listener`,
    );
    assert.match(e.TKG_METRICS_PORT, /^\d+$/);
    assert.deepEqual(service.depends_on, {
      'kafka-init': { condition: 'service_completed_successfully' },
      registry: { condition: 'service_started' },
    });
  }
  assert.equal(services.serve.deploy?.replicas, 2);
  // exactly one replica publishes forecasts and evaluations
  assert.deepEqual(commandOf('serve-steps'), ['serve', '--publish-steps']);
  assert.ok(!commandOf('serve').includes('--publish-steps'));
  // Replicas cannot share a fixed host port or container name.
  assert.equal(services.serve.ports, undefined);
  assert.ok(!('container_name' in services.serve));
});

test('compose: Prometheus mounts the config and every rule file it loads, and scrapes the tkg services', () => {
  assert.match(services.prometheus.image ?? '', /^prom\/prometheus:v2\.\d+\.\d+$/);
  const promMounts = mounts('prometheus');
  const config = promMounts.find((m) => m.target === '/etc/prometheus/prometheus.yml');
  assert.equal(config?.source, './prometheus/prometheus.yml');
  const prom = readYaml<{ rule_files: string[]; scrape_configs: Record<string, unknown>[] }>(
    join(prometheusDir, 'prometheus.yml'),
  );
  for (const rules of prom.rule_files) {
    assert.ok(
      promMounts.some(
        (m) => m.target === `/etc/prometheus/${rules}` && m.source === `./prometheus/${rules}`,
      ),
      `rule file ${rules} is not mounted`,
    );
  }
  const metricsPort = env('serve').TKG_METRICS_PORT;
  const scraped = new Set<string>();
  for (const job of prom.scrape_configs) {
    for (const sc of (job.static_configs as { targets: string[] }[] | undefined) ?? []) {
      for (const target of sc.targets) {
        const [host, port] = target.split(':');
        if (host === 'localhost') continue; // Prometheus itself
        assert.ok(services[host], `target ${target} is not a compose service`);
        assert.equal(port, env(host).TKG_METRICS_PORT);
        scraped.add(host);
      }
    }
    for (const sd of (job.dns_sd_configs as { names: string[]; port: number }[] | undefined) ??
      []) {
      for (const host of sd.names) {
        assert.ok(services[host], `DNS name ${host} is not a compose service`);
        assert.equal(String(sd.port), metricsPort);
        scraped.add(host);
      }
    }
  }
  assert.deepEqual([...scraped].sort(), [...TKG_STAGES, ...SHARDED].sort());
  // The serve replicas are discovered through DNS (static targets would see one replica only).
  const serveJob = prom.scrape_configs.find((job) => job.job_name === 'tkg-serve');
  assert.ok(serveJob?.dns_sd_configs, 'serve must use dns_sd_configs to find every replica');
});

test('compose: the sharded profile runs shard replicas 0 and 1 of 2 and a front listing them in index order', () => {
  for (const name of SHARDED) {
    assert.deepEqual(services[name].profiles, ['sharded'], `${name} is in the sharded profile`);
    assert.equal(env(name).KAFKA_BROKERS, env('serve').KAFKA_BROKERS);
  }
  const urls = env('serve-front').TKG_SHARD_SERVERS.split(',');
  assert.deepEqual(commandOf('serve-front'), ['serve']);
  assert.equal(urls.length, 2);
  urls.forEach((url, i) => {
    const shard = `shard-${i}`;
    const e = env(shard);
    assert.deepEqual(commandOf(shard), ['shard']);
    assert.equal(e.TKG_SHARD_INDEX, String(i));
    assert.equal(e.TKG_SHARD_COUNT, String(urls.length));
    assert.equal(url, `http://${shard}:${e.TKG_SHARD_PORT}`);
    assert.ok(
      (services[shard].expose ?? []).map(String).includes(e.TKG_SHARD_PORT),
      `${shard} exposes its shard port`,
    );
  });
});

test('compose: Grafana provisions the Prometheus datasource and the dashboard', () => {
  const grafanaMounts = mounts('grafana');
  const datasourcesDir = grafanaMounts.find(
    (m) => m.target === '/etc/grafana/provisioning/datasources',
  );
  const dashboardsDir = grafanaMounts.find(
    (m) => m.target === '/etc/grafana/provisioning/dashboards',
  );
  assert.ok(datasourcesDir && dashboardsDir, 'Grafana provisioning directories are not mounted');
  const datasourceFiles = readdirSync(join(deployDir, datasourcesDir.source)).filter((f) =>
    f.endsWith('.yml'),
  );
  const datasources = datasourceFiles.flatMap(
    (f) =>
      readYaml<{ datasources: { type: string; url: string; uid: string }[] }>(
        join(deployDir, datasourcesDir.source, f),
      ).datasources,
  );
  const prometheus = datasources.find((d) => d.type === 'prometheus');
  assert.ok(prometheus, 'no prometheus datasource provisioned');
  const url = new URL(prometheus.url);
  assert.ok(services[url.hostname], `datasource host ${url.hostname} is not a compose service`);
  assert.ok(services.prometheus.ports?.some((p) => p.endsWith(`:${url.port}`)));

  const providerFiles = readdirSync(join(deployDir, dashboardsDir.source)).filter((f) =>
    f.endsWith('.yml'),
  );
  const providers = providerFiles.flatMap(
    (f) =>
      readYaml<{ providers: { type: string; options: { path: string } }[] }>(
        join(deployDir, dashboardsDir.source, f),
      ).providers,
  );
  const dashboardMount = grafanaMounts.find((m) => m.source === './grafana/dashboard.json');
  assert.ok(dashboardMount, 'dashboard.json is not mounted');
  assert.ok(
    providers.some((p) => p.type === 'file' && dirname(dashboardMount.target) === p.options.path),
    'no provider reads the mounted dashboard',
  );

  const dashboard = readDashboard();
  const variable = dashboard.templating.list.find((v) => v.type === 'datasource');
  assert.equal(variable?.query, 'prometheus');
  const ids = new Set<number>();
  const cells = new Set<string>();
  for (const panel of dashboard.panels) {
    assert.ok(!ids.has(panel.id), `duplicate panel id ${panel.id}`);
    ids.add(panel.id);
    const { x, y, w, h } = panel.gridPos;
    assert.ok(x >= 0 && w > 0 && x + w <= 24, `panel "${panel.title}" exceeds the 24-column grid`);
    for (let row = y; row < y + h; row++) {
      for (let col = x; col < x + w; col++) {
        const cell = `${row},${col}`;
        assert.ok(!cells.has(cell), `panel "${panel.title}" overlaps another panel at ${cell}`);
        cells.add(cell);
      }
    }
    if (panel.type === 'row') continue;
    assert.ok(panel.targets && panel.targets.length > 0, `panel "${panel.title}" has no query`);
    for (const target of [panel.datasource, ...panel.targets.map((t) => t.datasource)]) {
      assert.deepEqual(
        target,
        { type: 'prometheus', uid: '${datasource}' },
        `panel "${panel.title}" must use the $datasource variable`,
      );
    }
  }
  const titles = dashboard.panels.map((p) => p.title.toLowerCase()).join(' | ');
  for (const needed of [
    'mrr by filter',
    'mrr drift',
    'ingest rate',
    'consumer lag',
    'dead letters',
    'latency percentiles',
    'model version',
  ]) {
    assert.ok(titles.includes(needed), `dashboard has no "${needed}" panel`);
  }
});

test('compose: every bind mount exists and every named volume is declared', () => {
  for (const name of Object.keys(services)) {
    for (const mount of mounts(name)) {
      if (mount.bind) {
        assert.ok(
          existsSync(join(deployDir, mount.source)),
          `${name}: ${mount.source} does not exist`,
        );
      } else {
        assert.ok(
          compose.volumes && mount.source in compose.volumes,
          `${name}: volume ${mount.source} is not declared`,
        );
      }
    }
  }
});

test('Dockerfile: node:20 image, COPY sources exist and are not .dockerignored, tkg entrypoint', () => {
  const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
  assert.match(dockerfile.split('\n')[0], /^# syntax=docker\/dockerfile:1$/);
  const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
  assert.ok(
    froms.length > 0 && froms.every((image) => /^node:20(-|$)/.test(image)),
    `base images: ${froms.join(', ')}`,
  );
  const ignored = readFileSync(join(repoRoot, '.dockerignore'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
  for (const match of dockerfile.matchAll(/^COPY (?!--from)(.+)$/gm)) {
    const parts = match[1].trim().split(/\s+/);
    for (const source of parts.slice(0, -1)) {
      assert.ok(existsSync(join(repoRoot, source)), `COPY source ${source} does not exist`);
      assert.ok(
        !ignored.some((pattern) => source === pattern || source.startsWith(`${pattern}/`)),
        `COPY source ${source} is excluded by .dockerignore`,
      );
    }
  }
  assert.match(dockerfile, /npm ci --omit=dev/);
  assert.match(dockerfile, /^ENTRYPOINT \["node", "bin\/tkg\.js"\]$/m);
  assert.ok(existsSync(join(repoRoot, 'bin', 'tkg.js')));
  for (const heavy of ['node_modules', '.git', '.tkg'])
    assert.ok(ignored.includes(heavy), `.dockerignore should exclude ${heavy}`);
});

test('Dockerfile: every package src/ imports at runtime is a production dependency (the image omits dev deps)', () => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  const problems: string[] = [];
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((entry) => {
      const path = join(dir, entry);
      return statSync(path).isDirectory() ? walk(path) : path.endsWith('.ts') ? [path] : [];
    });
  for (const file of walk(join(repoRoot, 'src'))) {
    const text = readFileSync(file, 'utf8');
    const specifiers = [
      ...[...text.matchAll(/^import (?!type\b)[^'"]*?from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]),
      ...[...text.matchAll(/^import\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]),
      ...[...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]),
    ];
    for (const specifier of specifiers) {
      if (specifier.startsWith('.') || specifier.startsWith('node:') || specifier.startsWith('/'))
        continue;
      const name = specifier.startsWith('@')
        ? specifier.split('/').slice(0, 2).join('/')
        : specifier.split('/')[0];
      if (!(name in pkg.dependencies))
        problems.push(
          `${relative(repoRoot, file)} imports ${name}, which is not in package.json dependencies`,
        );
    }
  }
  assert.deepEqual(problems, [], problems.join('\n'));
});

test('compose: the tkg verbs and flags the services run exist in the CLI', async () => {
  const { buildProgram } = await import('../../src/cli/main.ts');
  const program = await buildProgram();
  const missing: string[] = [];
  for (const [name, service] of Object.entries(services)) {
    if (!service.build) continue;
    const [verb, ...args] = commandOf(name);
    const command = program.commands.find((c) => c.name() === verb);
    if (!command) {
      missing.push(verb);
      continue;
    }
    for (const flag of args.filter((a) => a.startsWith('--'))) {
      assert.ok(
        command.options.some((o) => o.long === flag),
        `${name}: tkg ${verb} has no option ${flag}`,
      );
    }
  }
  assert.deepEqual(missing, [], `compose runs tkg verbs the CLI lacks: ${missing.join(', ')}`);
});

test('compose: every environment variable the tkg services set is a configuration key', async () => {
  const { envNames } = await import('../../src/config/config.ts');
  const known = new Set(Object.values(envNames));
  for (const [name, service] of Object.entries(services)) {
    if (!service.build) continue;
    const environment = (service as { environment?: Record<string, unknown> }).environment ?? {};
    for (const variable of Object.keys(environment)) {
      assert.ok(
        known.has(variable),
        `${name}: ${variable} is not a tkg configuration variable (see tkg config)`,
      );
    }
  }
});
