// One representative record per schema (shared by the codec unit test and the Kafka round-trip test).
import type { SchemaName } from '../../src/schemas/codec.ts';

export const sampleRecords: Record<SchemaName, Record<string, unknown>> = {
  Fact: {
    subject: 'Barack_Obama',
    relation: 'isPresidentOf',
    object: 'USA',
    step: 2009,
    timestamp: null,
  },
  Query: {
    replyId: 'q-1',
    subject: 'Barack_Obama',
    relation: 'isPresidentOf',
    object: null,
    k: 5,
    filter: 'timeAware',
    answer: 'USA',
    evidence: 2,
  },
  Answer: {
    replyId: 'q-1',
    modelVersion: 7,
    step: 2010,
    ok: true,
    error: null,
    results: [
      {
        entity: 'USA',
        score: 3.25,
        probability: 0.625,
        evidence: [
          {
            kind: 'recurrence',
            rule: 'the same fact at step 2008',
            weight: 1.5,
            facts: [
              { subject: 'Barack_Obama', relation: 'isPresidentOf', object: 'USA', step: 2008 },
            ],
          },
        ],
      },
      { entity: 'Kenya', score: -1.5, probability: null, evidence: [] },
    ],
    rank: 1,
    historyStep: 2009,
  },
  Forecast: {
    step: 2010,
    subject: 'Barack_Obama',
    relation: 'isPresidentOf',
    objects: [{ entity: 'USA', probability: 0.875, score: 2.5, evidence: [] }],
    modelVersion: 7,
    historyStep: 2009,
    calibration: 'platt',
  },
  StepMetrics: {
    dataset: 'yago',
    step: 183,
    model: 'nlsm',
    filter: 'static',
    direction: 'both',
    mrr: 69.4,
    hits1: 60.5,
    hits3: 71.25,
    hits10: 73.9,
    count: 3120,
    drift: null,
  },
  ModelAnnouncement: {
    name: 'nlsm',
    version: 7,
    step: 2010,
    createdAt: '2026-01-01T00:00:00.000Z',
    vocabularyHash: 'sha256:abc',
    onnx: Buffer.from([8, 7, 18, 4, 0, 255]),
    location: null,
    entities: ['Barack_Obama', 'USA', 'Kenya'],
    relations: ['isPresidentOf'],
    metadata: { K: '64', window: '5' },
    kind: 'nlsm-h',
    trainedStep: 2009,
    terms: '{"kind":"none"}',
    calibration: '{"kind":"sigmoid"}',
  },
  ModelChunk: {
    name: 'nlsm',
    version: 7,
    index: 1,
    count: 3,
    offset: 4,
    totalBytes: 10,
    sha256: 'a'.repeat(64),
    bytes: Buffer.from([8, 7, 18, 4]),
  },
};

/** avsc decodes records as instances of generated classes; this turns them (deeply) into plain objects. */
export function toPlain(value: unknown): unknown {
  if (Buffer.isBuffer(value) || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(toPlain);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toPlain(v)]));
}
