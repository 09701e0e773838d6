import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../src/datasets/files.ts';
import {
  StepClock,
  parseEventTime,
  parseGranularity,
  dysatClockSpec,
} from '../../src/core/step-clock.ts';
import { ConfigError, InvalidInputError } from '../../src/core/errors.ts';

test('parseGranularity: fixed units and calendar months/years', () => {
  assert.deepEqual(parseGranularity('60d'), { unit: 'fixed', ms: 60 * 86_400_000 });
  assert.deepEqual(parseGranularity('6h'), { unit: 'fixed', ms: 6 * 3_600_000 });
  assert.deepEqual(parseGranularity('1y'), { unit: 'months', months: 12 });
  assert.deepEqual(parseGranularity('3mo'), { unit: 'months', months: 3 });
  for (const bad of ['', 'd', '0d', '1.5d', '10x', '-1d'])
    assert.throws(() => parseGranularity(bad), ConfigError, bad);
});

test('parseEventTime: ISO-8601 forms, epoch ms, and typed rejections', () => {
  assert.equal(parseEventTime('2001-11-27T20:39:55Z'), Date.UTC(2001, 10, 27, 20, 39, 55));
  assert.equal(parseEventTime('2001-11-27'), Date.UTC(2001, 10, 27));
  assert.equal(
    parseEventTime('2001-11-27T20:39:55'),
    Date.UTC(2001, 10, 27, 20, 39, 55),
    'no zone = UTC',
  );
  assert.equal(
    parseEventTime('2001-11-27T20:39:55.250+02:00'),
    Date.UTC(2001, 10, 27, 18, 39, 55, 250),
  );
  assert.equal(parseEventTime(1082008561000), 1082008561000);
  assert.equal(parseEventTime('1082008561000'), 1082008561000);
  const reasons = (v: unknown) => {
    try {
      parseEventTime(v);
      return 'ok';
    } catch (e) {
      assert.ok(e instanceof InvalidInputError);
      return e.reason;
    }
  };
  assert.equal(reasons('yesterday'), 'invalid_timestamp');
  assert.equal(reasons('2001-02-30'), 'invalid_timestamp');
  assert.equal(reasons('2001-11-27T25:00:00Z'), 'invalid_timestamp');
  assert.equal(reasons(Number.NaN), 'invalid_timestamp');
  assert.equal(reasons(Infinity), 'invalid_timestamp');
  assert.equal(reasons(true), 'wrong_type');
});

test('StepClock: integer steps pass through; bad steps are typed errors', () => {
  const clock = new StepClock();
  assert.equal(clock.stepOf({ step: 0 }), 0);
  assert.equal(clock.stepOf({ step: 177 }), 177);
  assert.throws(
    () => clock.stepOf({ step: -1 }),
    (e: InvalidInputError) => e.reason === 'invalid_step',
  );
  assert.throws(
    () => clock.stepOf({ step: 1.5 }),
    (e: InvalidInputError) => e.reason === 'invalid_step',
  );
  assert.throws(
    () => clock.stepOf({ timestampMs: 0 }),
    (e: InvalidInputError) => e.reason === 'unmapped_timestamp',
  );
});

test('StepClock: fixed granularity buckets [origin + k*g, origin + (k+1)*g)', () => {
  const clock = new StepClock({ granularity: '10d', origin: '2004-01-01T00:00:00Z' });
  const day = 86_400_000;
  const origin = Date.UTC(2004, 0, 1);
  assert.equal(clock.stepOf({ timestampMs: origin }), 0);
  assert.equal(clock.stepOf({ timestampMs: origin + 10 * day - 1 }), 0);
  assert.equal(clock.stepOf({ timestampMs: origin + 10 * day }), 1);
  assert.equal(clock.stepOf({ timestampMs: origin + 95 * day }), 9);
  assert.throws(
    () => clock.stepOf({ timestampMs: origin - 1 }),
    (e: InvalidInputError) => e.reason === 'before_origin',
  );
});

test('StepClock: calendar years follow UTC year boundaries (leap years included)', () => {
  const clock = new StepClock({ granularity: '1y', origin: '1830-01-01' });
  assert.equal(clock.stepOf({ timestampMs: parseEventTime('1830-12-31T23:59:59Z') }), 0);
  assert.equal(clock.stepOf({ timestampMs: parseEventTime('1831-01-01') }), 1);
  assert.equal(clock.stepOf({ timestampMs: parseEventTime('2007-06-15') }), 177);
  const months = new StepClock({ granularity: '2mo', origin: '2000-01-31' });
  assert.equal(months.stepOf({ timestampMs: parseEventTime('2000-03-30') }), 0);
  assert.equal(
    months.stepOf({ timestampMs: parseEventTime('2000-04-01') }),
    1,
    'Jan 31 + 2 months = Mar 31',
  );
});

test('StepClock: relative origin "first+offset", skip before origin, fold after X into the last step', () => {
  const day = 86_400_000;
  const clock = new StepClock({
    granularity: '60d',
    origin: 'first+200d',
    foldAfter: '2002-01-01',
    beforeOrigin: 'skip',
  });
  const first = Date.UTC(1999, 0, 1);
  assert.equal(
    clock.stepOf({ timestampMs: first }),
    null,
    'the first event resolves the origin and is itself before it',
  );
  assert.equal(clock.origin(), first + 200 * day);
  assert.equal(clock.stepOf({ timestampMs: first + 200 * day }), 0);
  const lastStep = clock.stepOfTime(Date.UTC(2002, 0, 1));
  assert.equal(clock.stepOf({ timestampMs: Date.UTC(2003, 5, 1) }), lastStep);
  // the resolved origin survives a restart through state()
  const restored = new StepClock(clock.spec, clock.state());
  assert.equal(restored.stepOf({ timestampMs: first + 260 * day }), 1);
  assert.throws(() => new StepClock({ granularity: '1y' }), ConfigError);
});

test("StepClock: DySAT slicing of the raw Enron and UCI data gives the paper's 16 and 13 steps", () => {
  const enronPath = join(projectRoot, 'data/enron/emails.csv.gz');
  const uciPath = join(projectRoot, 'data/uci/out.opsahl-ucsocial.gz');
  const enronTimes = gunzipSync(readFileSync(enronPath))
    .toString('utf8')
    .split('\n')
    .slice(1)
    .filter((l) => l)
    .map((l) => parseEventTime(l.split(',')[2]));
  const uciTimes = gunzipSync(readFileSync(uciPath))
    .toString('utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('%'))
    .map((l) => Number(l.trim().split(/\s+/)[3]) * 1000);
  const count = (
    times: number[],
    stepDays: number,
    startOffsetDays: number,
    foldBeforeEndDays: number,
  ) => {
    let firstMs = Infinity;
    let lastMs = -Infinity;
    for (const time of times) {
      firstMs = Math.min(firstMs, time);
      lastMs = Math.max(lastMs, time);
    }
    const clock = new StepClock(
      dysatClockSpec({ firstMs, lastMs, stepDays, startOffsetDays, foldBeforeEndDays }),
    );
    const steps = new Set<number>();
    for (const time of times) {
      const step = clock.stepOf({ timestampMs: time });
      if (step !== null) steps.add(step);
    }
    return { steps: steps.size, max: Math.max(...steps) };
  };
  assert.deepEqual(count(enronTimes, 60, 200, 200), { steps: 16, max: 15 });
  assert.deepEqual(count(uciTimes, 10, 5, 60), { steps: 13, max: 12 });
});
