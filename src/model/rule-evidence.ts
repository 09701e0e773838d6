// The evidence behind the rule term's candidates (issue 15): for each candidate of a query, the past facts of the
// stream and the rule or two-hop path that used them, with the share of the term they carry. RuleTermState.evidence
// (rule-term.ts) calls it with its spec, its rule tables and its edge index.
// Owns: the evidence items and their text. Must not touch the index's counts (rule-edges.ts) or the term rows
// (rule-term.ts): it only reads them. Pure: imports only src/core and src/model; no tfjs, onnxruntime, Kafka, src/train.
import type { Direction } from '../core/types.ts';
import type { Evidence, EvidenceFact } from './terms.ts';
import { FEATURE_INDEX as FI, queryCode, ruleBucket, type RuleTermSpec } from './rule-spec.ts';
import type { RuleEdgeIndex } from './rule-edges.ts';

/** The rule tables of a RuleTermState: C codes, B buckets, length-1 rules and path rules in -log(1 - c) form. */
export interface RuleTables {
  C: number;
  B: number;
  /** ruleLog[(head * C + body) * B + bucket] = -log(1 - confidence); ruleConf the confidence. */
  ruleLog: Float32Array;
  ruleConf: Float32Array;
  /** head -> (body1 * C + body2) -> -log(1 - confidence). */
  paths: Map<number, Map<number, number>>;
}

/** A fact of the stream behind an edge (anchor, code, neighbour) at a step, in (subject, relation, object) order. */
export function edgeFact(
  anchor: number,
  code: number,
  neighbour: number,
  step: number,
): EvidenceFact {
  const relation = code >> 1;
  return (code & 1) === 0
    ? { subject: anchor, relation, object: neighbour, step }
    : { subject: neighbour, relation, object: anchor, step };
}

/** Per candidate entity, the top `limit` evidence items (largest share of the term first) of the query at `step`. */
export function evidenceOf(
  spec: RuleTermSpec,
  tables: RuleTables,
  index: RuleEdgeIndex,
  step: number,
  direction: Direction,
  anchor: number,
  relation: number,
  entities: Int32Array,
  limit: number,
): Evidence[][] {
  const w = spec.weights;
  const code = queryCode(direction, relation);
  const { C, B, ruleLog, ruleConf, paths } = tables;
  const known = code < C;
  const neighbours = index.neighbours(anchor);
  const name = (c: number) => `r${c >> 1}${c & 1 ? '^-1' : ''}`;
  const head = `${name(code)}(X, Y)`;
  return Array.from(entities, (entity) => {
    const items: Evidence[] = [];
    const pair = neighbours?.get(entity);
    if (pair !== undefined && entity !== anchor && w[FI.recency] > 0) {
      // the latest fact between them (any relation): the recency feature's support
      const k = pair.last.indexOf(pair.latest);
      const lag = Math.max(1, step - pair.latest);
      items.push({
        kind: 'interaction',
        rule: `${head} <= any fact between X and Y (last ${lag} steps ago)`,
        weight: w[FI.recency] / lag,
        facts: [edgeFact(anchor, pair.codes[k], entity, pair.latest)],
      });
    }
    if (pair !== undefined) {
      for (let k = 0; k < pair.codes.length; k++) {
        const body = pair.codes[k];
        const lag = step - pair.last[k];
        const bucket = ruleBucket(spec, lag, pair.count[k]);
        const facts = [edgeFact(anchor, body, entity, pair.last[k])];
        if (pair.previous[k] >= 0) facts.push(edgeFact(anchor, body, entity, pair.previous[k]));
        if (body === code) {
          const strict = pair.value[k] * Math.pow(spec.decay, lag);
          const weight =
            w[FI.strict] * strict +
            w[FI.logStrict] * Math.log1p(strict) +
            (known ? w[FI.selfRule] * ruleLog[(code * C + code) * B + bucket] : 0);
          items.push({
            kind: 'recurrence',
            rule: `${head} <= ${head} (seen ${pair.count[k]}x, last ${lag} steps ago)`,
            weight,
            facts,
          });
        } else if (known && body < C) {
          const at = (code * C + body) * B + bucket;
          if (ruleConf[at] <= 0) continue;
          items.push({
            kind: 'rule',
            rule: `${head} <= ${name(body)}(X, Y) at lag ${lag} (confidence ${ruleConf[at].toFixed(3)})`,
            weight: w[FI.ruleSum] * ruleLog[at],
            facts,
          });
        }
      }
    }
    const pathRules = paths.get(code);
    if (pathRules !== undefined && spec.pathWindow > 0) {
      index.forEachPath(step, anchor, (body1, middle, step1, body2, end, step2) => {
        if (end !== entity || body1 >= C || body2 >= C) return;
        const value = pathRules.get(body1 * C + body2);
        if (value === undefined) return;
        items.push({
          kind: 'path',
          rule: `${head} <= ${name(body1)}(X, Z), ${name(body2)}(Z, Y) (confidence ${(-Math.expm1(-value)).toFixed(3)})`,
          weight: w[FI.pathSum] * value,
          facts: [edgeFact(anchor, body1, middle, step1), edgeFact(middle, body2, entity, step2)],
        });
      });
    }
    items.sort((a, b) => b.weight - a.weight);
    return items.filter((item) => item.weight > 0).slice(0, limit);
  });
}
