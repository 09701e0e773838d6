// `tkg query`: ask the running replicas one question through the topics, as any client would (<prefix>.queries ->
// <prefix>.answers), and print the ranked answers with their probabilities and the evidence behind them.
//   npx tkg query --subject China --relation Consult
//   npx tkg query --object Iran --relation Threaten --top-k 5 --filter static --json
// Wiring only: the client is src/kafka/query-client.ts. Exit codes: 0 answered, 1 error answer or no answer, 2 usage.
import type { Command } from 'commander';
import { loadConfig } from '../../config/config.ts';
import { ConfigError, TkgError } from '../../core/errors.ts';
import type { FilterMode } from '../../core/types.ts';
import { resolveBrokerSource } from '../../kafka/brokers.ts';
import { createKafkaClient } from '../../kafka/client.ts';
import { QueryClient } from '../../kafka/query-client.ts';
import { withRetries } from '../../kafka/retry.ts';
import { topicNames } from '../../kafka/topics.ts';
import { SchemaCodec } from '../../schemas/codec.ts';
import { MAX_EVIDENCE, type AnswerRecord } from '../../serve/queries.ts';

interface QueryFlags {
  subject?: string;
  object?: string;
  relation: string;
  filter: string;
  answer?: string;
  evidence: string;
  timeoutMs: string;
  json?: boolean;
}

/** Pure: the answer as the lines a person reads. */
export function formatAnswer(answer: AnswerRecord, question: string): string {
  if (!answer.ok) return `${question}: ${answer.error}`;
  const lines = [
    `${question} — bundle ${answer.modelVersion}, step ${answer.step}${answer.historyStep >= 0 ? `, history to step ${answer.historyStep}` : ''}`,
  ];
  answer.results.forEach((r, i) => {
    const p = r.probability === null ? '' : `  p=${r.probability.toFixed(3)}`;
    lines.push(`${String(i + 1).padStart(3)}. ${r.entity}  score ${r.score.toFixed(3)}${p}`);
    for (const e of r.evidence) {
      const facts = e.facts
        .map((f) => `(${f.subject}, ${f.relation}, ${f.object}, step ${f.step})`)
        .join('; ');
      lines.push(`       ${e.kind}: ${e.rule} [${e.weight.toFixed(3)}] ${facts}`);
    }
  });
  if (answer.rank !== null) lines.push(`rank of the given answer: ${answer.rank}`);
  return lines.join('\n');
}

export function register(program: Command): void {
  program
    .command('query')
    .description(
      'send one query through <prefix>.queries and print the ranked answer with its evidence',
    )
    .option('--subject <name>', 'ask (subject, relation, ?)')
    .option('--object <name>', 'ask (?, relation, object)')
    .requiredOption('--relation <name>', 'the relation')
    .option('--filter <mode>', 'raw, static or timeAware', 'raw')
    .option('--answer <name>', 'also report the rank of this entity')
    .option('--evidence <n>', `evidence items per entity (0 to ${MAX_EVIDENCE})`, '3')
    .option('--timeout-ms <ms>', 'how long to wait for the answer', '30000')
    .option('--json', 'print the Answer record as JSON')
    .action(async (flags: QueryFlags) => {
      if ((flags.subject === undefined) === (flags.object === undefined))
        throw new ConfigError(
          'give exactly one of --subject (for (s, r, ?)) or --object (for (?, r, o))',
        );
      if (!['raw', 'static', 'timeAware'].includes(flags.filter))
        throw new ConfigError(
          `--filter ${JSON.stringify(flags.filter)}: use raw, static or timeAware`,
        );
      const numbers = Object.fromEntries(
        (['evidence', 'timeoutMs'] as const).map((key) => {
          const value = Number(flags[key]);
          if (!Number.isInteger(value) || value < 0)
            throw new ConfigError(
              `--${key} ${JSON.stringify(flags[key])}: expected a non-negative integer`,
            );
          return [key, value];
        }),
      ) as Record<'evidence' | 'timeoutMs', number>;
      const config = loadConfig();
      const brokers = await resolveBrokerSource(config, process.env);
      const kafka = createKafkaClient({
        brokers: brokers.brokers,
        clientId: `${config.kafkaClientId}-query`,
      });
      const topics = topicNames(config.topicPrefix);
      const client = new QueryClient({
        kafka,
        codec: SchemaCodec.load(),
        queriesTopic: topics.queries,
        answersTopic: topics.answers,
      });
      try {
        await withRetries('connecting', () => client.start());
        const answer = await client.ask(
          {
            subject: flags.subject ?? null,
            object: flags.object ?? null,
            relation: flags.relation,
            k: config.topK,
            filter: flags.filter as FilterMode,
            answer: flags.answer ?? null,
            evidence: numbers.evidence,
          },
          numbers.timeoutMs,
        );
        const question = flags.subject
          ? `(${flags.subject}, ${flags.relation}, ?)`
          : `(?, ${flags.relation}, ${flags.object})`;
        process.stdout.write(
          `${flags.json ? JSON.stringify(answer) : formatAnswer(answer, question)}\n`,
        );
        if (!answer.ok)
          throw new TkgError(answer.error ?? 'error answer', { reason: 'error_answer' });
      } finally {
        await client.stop();
        await brokers.release();
      }
    });
}
