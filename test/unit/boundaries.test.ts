// The dependency rules of CONVENTIONS.md and SPEC section 7, enforced on every import of src/: data flows one way,
// training and serving meet only at the model bundle (src/model), the Kafka client is imported only by the Kafka
// adapter (src/kafka), and no project module is imported through a computed string path. A self-test feeds the
// checker forbidden imports to prove it reports them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { projectRoot } from '../../src/datasets/files.ts';

interface Rule {
  /** Files the rule applies to (path relative to the project root). */
  from: RegExp;
  /** Forbidden import targets: project paths (relative to the root, resolved) or package names. */
  forbid: RegExp;
  why: string;
}

const kafkaClients = /^(kafkajs|@confluentinc\/kafka-javascript|node-rdkafka)(\/|$)/;

export const rules: Rule[] = [
  {
    from: /^src\/(?!kafka\/)/,
    forbid: kafkaClients,
    why: 'a Kafka client is imported only by the Kafka adapter in src/kafka',
  },
  {
    from: /^src\/train\//,
    forbid: /^src\/(serve|kafka|ingest|pipeline|cli)\//,
    why: 'training meets serving only at the bundle (src/model); it never sees Kafka',
  },
  {
    from: /^src\/serve\//,
    forbid: /^src\/(train|baselines|pipeline|cli|ingest)\/|^@tensorflow\//,
    why: 'a serving replica needs only the bundle (src/model) and onnxruntime, never training code or tfjs',
  },
  {
    from: /^src\/model\//,
    forbid: /^src\/(?!core\/|model\/)|^@tensorflow\/|^onnxruntime-node$|^kafkajs$/,
    why: 'the bundle contract is pure: it imports only src/core and itself',
  },
  {
    from: /^src\/window\//,
    forbid: /^src\/(train|serve|kafka|ingest|pipeline|model)\//,
    why: 'the event-time window is pure stream semantics',
  },
  {
    from: /^src\/ingest\//,
    forbid: /^src\/(serve|train|pipeline)\//,
    why: 'ingest never imports serving or training',
  },
  {
    from: /^src\/eval\//,
    forbid: /^src\/(train|serve|kafka|pipeline)\/|^@tensorflow\//,
    why: 'evaluation protocols take models through interfaces, in-process, without a broker',
  },
  {
    from: /^src\/core\//,
    forbid: /^src\/(?!core\/)/,
    why: 'src/core is shared by every stage and depends on none',
  },
  {
    from: /^src\/(?!train\/nlsm\/)/,
    forbid: /^@tensorflow\//,
    why: 'tfjs is loaded only by the NLSM trainer (src/train/nlsm)',
  },
  {
    from: /^src\/(?!serve\/|train\/nlsm\/)/,
    forbid: /^onnxruntime-node$/,
    why: 'onnxruntime is the serving runtime (src/serve), and the kernel engine of the NLSM trainer (src/train/nlsm)',
  },
];

export interface Violation {
  file: string;
  target: string;
  why: string;
}

const importPattern =
  /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,]+\s+from\s+)?['"]([^'"]+)['"]|import\(\s*([^)]*?)\s*\)/g;

/** Pure: every rule violation and every non-literal dynamic import in `files` (path -> source text). */
export function checkBoundaries(files: Record<string, string>): Violation[] {
  const out: Violation[] = [];
  for (const [file, text] of Object.entries(files)) {
    for (const match of text.matchAll(importPattern)) {
      let target = match[1];
      if (target === undefined) {
        const argument = match[2];
        const literal = /^(['"`])([^'"`$]+)\1$/.exec(argument);
        // An identifier bound in the same file to a package name (an optional package, e.g. tfjs-node) is no path.
        const bound = /^\w+$/.test(argument)
          ? new RegExp(`const ${argument}\\s*=\\s*'([^'./][^']*)'`).exec(text)
          : null;
        if (bound) {
          target = bound[1];
        } else if (!literal) {
          out.push({
            file,
            target: `import(${argument})`,
            why: 'no module is imported through a computed string path',
          });
          continue;
        } else target = literal[2];
      }
      if (target.startsWith('node:')) continue;
      const resolved = target.startsWith('.') ? normalize(join(dirname(file), target)) : target;
      for (const rule of rules) {
        if (rule.from.test(file) && rule.forbid.test(resolved))
          out.push({ file, target: resolved, why: rule.why });
      }
    }
  }
  return out;
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

test('src/ keeps the dependency rules (Kafka client only in src/kafka, train and serve meet at src/model)', () => {
  const files = Object.fromEntries(
    sources(join(projectRoot, 'src')).map((path) => [
      relative(projectRoot, path),
      readFileSync(path, 'utf8'),
    ]),
  );
  assert.ok(Object.keys(files).length > 50);
  assert.deepEqual(checkBoundaries(files), []);
});

test('the boundary check reports forbidden imports (self-test)', () => {
  const found = checkBoundaries({
    'src/serve/a.ts':
      "import { Trainer } from '../train/nlsm/trainer.ts';\nimport * as tf from '@tensorflow/tfjs';",
    'src/train/b.ts':
      "import type { Scorer } from '../serve/scorer.ts';\nimport { Kafka } from 'kafkajs';",
    'src/eval/c.ts':
      "const m = await import(path);\nconst n = await import('../train/nlsm/index.ts');\nconst pkg = 'kafkajs';\nawait import(pkg);",
    'src/model/d.ts': "import { loadConfig } from '../config/config.ts';",
    'src/kafka/e.ts': "import { Kafka } from 'kafkajs';\nimport { x } from '../core/types.ts';",
    'src/core/f.ts': "export { y } from '../window/step.ts';",
  });
  const pairs = found.map((v) => `${v.file} -> ${v.target}`);
  assert.deepEqual(pairs, [
    'src/serve/a.ts -> src/train/nlsm/trainer.ts',
    'src/serve/a.ts -> @tensorflow/tfjs',
    'src/serve/a.ts -> @tensorflow/tfjs',
    'src/train/b.ts -> src/serve/scorer.ts',
    'src/train/b.ts -> kafkajs',
    'src/eval/c.ts -> import(path)',
    'src/eval/c.ts -> src/train/nlsm/index.ts',
    'src/eval/c.ts -> kafkajs',
    'src/model/d.ts -> src/config/config.ts',
    'src/core/f.ts -> src/window/step.ts',
  ]);
});
