// Idle sources (src/window/idleness.ts) with an injected clock: a partition is idle only when a log-end read issued
// at b found it caught up and it delivered nothing since b - T; an idle partition allows only the watermark reached by
// b - T. Includes a seeded simulation of producers, a Kafka-like log and a reader that asserts 0 late facts in any
// start order and producer timing, and shows that the previous rule (quiet for T, backlog known only from the last
// fetch) loses facts in the same simulation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventTimeWindow } from '../../src/window/event-time-window.ts';
import { WatermarkHistory } from '../../src/window/idleness.ts';
import type { EncodedFact, Snapshot } from '../../src/core/types.ts';
import { mulberry32 } from '../../src/core/random.ts';

const fact = (subject: number, step: number, object = subject): EncodedFact => ({
  subject,
  relation: 0,
  object,
  step,
});

function collect(window: EventTimeWindow): Snapshot[] {
  const out: Snapshot[] = [];
  window.onSnapshot((s) => out.push(s));
  return out;
}

test('watermark history: the highest value reached by a time; old entries forgotten but still answering', () => {
  const history = new WatermarkHistory();
  assert.equal(history.valueAt(100), -Infinity);
  history.record(10, 0);
  history.record(20, 3);
  history.record(25, 2); // not a rise: ignored
  history.record(40, 7);
  assert.equal(history.highest, 7);
  assert.equal(history.valueAt(9), -Infinity);
  assert.equal(history.valueAt(10), 0);
  assert.equal(history.valueAt(39), 3);
  assert.equal(history.valueAt(1000), 7);
  history.forgetBefore(30);
  assert.equal(history.size, 2, 'keeps the last entry at or before 30');
  assert.equal(history.valueAt(30), 3);
  assert.equal(history.valueAt(15), -Infinity, 'older than what is kept: allows nothing');
  history.record(35, 9); // a clock step backwards is clamped to the last time
  assert.equal(history.valueAt(39), 3);
  assert.equal(history.valueAt(40), 9);
});

test('quiet partitions at start-up do not let the first partition whose batch arrives close steps (issue 13)', () => {
  let now = 0;
  const window = new EventTimeWindow({ idleTimeoutMs: 1000, now: () => now });
  const closed = collect(window);
  const late: EncodedFact[] = [];
  window.onLate((f) => late.push(f));
  for (const p of [0, 1, 2]) window.addPartition(p);
  // ingest is up and verified caught up for 5 s before the first fact
  for (now = 0; now <= 5000; now += 250) {
    window.tick();
    for (const p of [0, 1, 2]) window.markCaughtUp(p, now);
  }
  assert.deepEqual(
    window.partitionStatus().map((p) => p.idle),
    [true, true, true],
  );
  // a producer's batch spans steps 0..5; partition 0's part is read first, 1 and 2 follow a few ms later
  now = 5010;
  for (let step = 0; step <= 5; step++) window.add(fact(step, step), 0);
  assert.equal(
    closed.length,
    0,
    'idle partitions allow only what was reached T before a verification',
  );
  now = 5100; // a verification issued before the other partitions' records were appended: they look caught up
  window.tick();
  window.markCaughtUp(1, 5090);
  window.markCaughtUp(2, 5090);
  assert.equal(closed.length, 0);
  now = 5015;
  for (let step = 0; step <= 5; step++) window.add(fact(10 + step, step), 1);
  // partition 2's part comes late (a slow fetch): verifications of it issued before its records were appended
  // allow nothing that partition 0 reached less than T before them
  for (now = 5050; now < 6000; now += 250) {
    window.tick();
    window.markCaughtUp(2, now);
  }
  assert.equal(closed.length, 0, 'partition 2 holds the steps partition 0 reached less than T ago');
  now = 6000;
  for (let step = 0; step <= 5; step++) window.add(fact(20 + step, step), 2);
  assert.deepEqual(
    closed.map((s) => s.step),
    [0, 1, 2, 3, 4],
  );
  for (const s of closed) assert.equal(s.triples.length / 3, 3, `step ${s.step} holds all 3 facts`);
  assert.equal(late.length, 0);
  assert.equal(
    window.watermark(),
    5,
    'the most advanced step stays open (end of stream closes it)',
  );
});

test('an idle partition allows the watermark reached T before its verification, not what others show now', () => {
  let now = 0;
  const window = new EventTimeWindow({ idleTimeoutMs: 1000, now: () => now });
  const closed = collect(window);
  window.addPartition(0);
  window.addPartition(1); // never sends anything
  for (now = 0; now <= 2000; now += 100) {
    window.tick();
    window.markCaughtUp(1, now);
    window.add(fact(1, Math.floor(now / 100)), 0); // partition 0 reaches step t/100 at t
  }
  // partition 1's last verification was issued at 2000: it allows what partition 0 had reached at 1000 (step 10)
  assert.equal(window.watermark(), 10);
  assert.equal(closed.at(-1)?.step, 9);
  assert.deepEqual(window.partitionStatus()[1], {
    partition: 1,
    maxStep: null,
    idle: true,
    allows: 10,
  });
  window.markCaughtUp(1, 1500); // an older answer arriving late never lowers anything
  assert.equal(window.watermark(), 10);
});

test('a partition with unread records is never idle, however long it is quiet; a stale read does not make it idle', () => {
  let now = 0;
  const window = new EventTimeWindow({ idleTimeoutMs: 1000, now: () => now });
  const closed = collect(window);
  window.addPartition(0);
  window.addPartition(1);
  window.add(fact(1, 0), 0);
  window.add(fact(2, 0), 1);
  window.add(fact(1, 5), 0);
  for (now = 0; now <= 10_000; now += 250) {
    window.tick();
    window.markCaughtUp(0, now);
    window.markUnread(1); // its reader is behind: the log holds records it has not read
  }
  assert.equal(closed.length, 0, 'partition 1 is behind, not idle');
  // partition 1 delivers a record at 10 100; a read issued at 10 050 (before it) answers after it
  now = 10_100;
  window.add(fact(2, 1), 1);
  assert.deepEqual(
    closed.map((s) => s.step),
    [0],
  );
  now = 10_150;
  window.tick(); // the record's activity is stamped here (never earlier than it arrived)
  now = 12_000;
  window.markCaughtUp(1, 10_050);
  assert.equal(window.partitionStatus()[1].idle, false, 'a read older than the last record');
  window.markCaughtUp(1, 11_000);
  assert.equal(
    window.partitionStatus()[1].idle,
    false,
    'caught up, but not yet for the whole timeout',
  );
  window.markCaughtUp(1, 11_200);
  assert.deepEqual(
    closed.map((s) => s.step),
    [0, 1, 2, 3, 4],
  );
});

test('all partitions idle: the watermark follows the most advanced one, T later; a partition waking up behind it gets late facts', () => {
  let now = 0;
  const window = new EventTimeWindow({ idleTimeoutMs: 1000, now: () => now });
  const closed = collect(window);
  window.add(fact(1, 0), 0);
  window.add(fact(2, 0), 1);
  window.add(fact(1, 3), 0);
  for (now = 250; now <= 3000; now += 250) {
    window.tick();
    window.markCaughtUp(0, now);
    window.markCaughtUp(1, now);
  }
  assert.equal(window.watermark(), 3);
  assert.deepEqual(
    closed.map((s) => s.step),
    [0, 1, 2],
  );
  assert.equal(window.add(fact(2, 1), 1), 'late');
  assert.equal(window.partitionStatus()[1].idle, false, 'a record wakes an idle partition');
  assert.equal(window.watermark(), 3, 'the watermark never goes back');
});

test('idleness off (idleTimeoutMs 0): verifications change nothing, every partition holds the watermark', () => {
  let now = 0;
  const window = new EventTimeWindow({ idleTimeoutMs: 0, now: () => now });
  const closed = collect(window);
  window.addPartition(1);
  window.add(fact(1, 0), 0);
  window.add(fact(1, 4), 0);
  for (now = 0; now < 60_000; now += 1000) {
    window.tick();
    window.markCaughtUp(1, now);
  }
  assert.equal(closed.length, 0);
});

// ---- simulation ----------------------------------------------------------------------------------------------------

interface Appended {
  appendedAt: number;
  fact: EncodedFact;
}

/**
 * Producers write bursts of facts in step order (a burst spans 1..6 steps; a subject always goes to the same
 * partition); each partition's part of a burst is appended a few ms after the previous partition's (what
 * librdkafka / kafkajs batching does); gaps between bursts range from 0 to 3x the idle timeout. The reader fetches
 * each partition at random moments with random delays and processes its records in order; a poller issues log-end
 * reads every ~T/4 whose answers arrive 1..80 ms later. `rule` picks the verification the poller performs.
 */
function simulate(
  seed: number,
  rule: 'fresh-log-end' | 'previous',
): { late: number; facts: number; steps: number } {
  const random = mulberry32(seed);
  const T = 1000;
  const partitions = 3;
  const logs: Appended[][] = [[], [], []];
  let time = 2000 + Math.floor(random() * 4000); // the reader is up and quiet this long before the first fact
  let step = 0;
  const expected = new Map<number, Set<string>>();
  for (let burst = 0; burst < 40; burst++) {
    const span = 1 + Math.floor(random() * 6);
    const skews = Array.from({ length: partitions }, () => Math.floor(random() * 40));
    for (let s = step; s < step + span; s++) {
      const count = 1 + Math.floor(random() * 12);
      for (let i = 0; i < count; i++) {
        const subject = Math.floor(random() * 60);
        const object = Math.floor(random() * 60);
        const p = subject % partitions;
        // a partition's log keeps the producer's order
        const appendedAt = Math.max(time + skews[p], logs[p].at(-1)?.appendedAt ?? 0);
        logs[p].push({ appendedAt, fact: fact(subject, s, object) });
        let set = expected.get(s);
        if (!set) expected.set(s, (set = new Set()));
        set.add(`${subject},${object}`);
      }
    }
    step += span;
    time += Math.floor(random() * 3 * T);
  }
  const end = time + 10 * T;

  let now = 0;
  const window = new EventTimeWindow({ idleTimeoutMs: T, now: () => now });
  let late = 0;
  window.onLate(() => late++);
  for (let p = 0; p < partitions; p++) window.addPartition(p);
  const position = [0, 0, 0];
  const appendedBy = (p: number, t: number) => {
    let n = 0;
    while (n < logs[p].length && logs[p][n].appendedAt <= t) n++;
    return n;
  };
  const nextFetch = [0, 0, 0];
  const lastDelivered = [0, 0, 0];
  const backlogKnown = [false, false, false];
  let nextPoll = 0;
  const pendingAnswers: Array<{ at: number; issuedAt: number; ends: number[] }> = [];
  for (now = 0; now <= end; now += 5) {
    for (let p = 0; p < partitions; p++) {
      if (now < nextFetch[p]) continue;
      // a fetch issued a little earlier: it holds what was appended by then
      const sees = appendedBy(p, now - Math.floor(random() * 30));
      if (position[p] < sees) lastDelivered[p] = now;
      for (; position[p] < sees; position[p]++) window.add(logs[p][position[p]].fact, p);
      backlogKnown[p] = position[p] < appendedBy(p, now);
      if (backlogKnown[p]) window.markUnread(p); // the fetch's high watermark
      nextFetch[p] = now + 5 + Math.floor(random() * 100);
    }
    if (now >= nextPoll) {
      window.tick();
      if (rule === 'fresh-log-end') {
        pendingAnswers.push({
          at: now + 1 + Math.floor(random() * 80),
          issuedAt: now,
          ends: Array.from({ length: partitions }, (_, p) => appendedBy(p, now)),
        });
      } else {
        // the previous rule: quiet for T and no backlog known from the last fetch = idle, allowing what the other
        // partitions show now (a verification "issued" T in the future allows the current highest watermark)
        for (let p = 0; p < partitions; p++)
          if (now - lastDelivered[p] >= T && !backlogKnown[p]) window.markCaughtUp(p, now + T);
      }
      nextPoll = now + T / 4;
    }
    while (pendingAnswers.length > 0 && pendingAnswers[0].at <= now) {
      const answer = pendingAnswers.shift() as (typeof pendingAnswers)[number];
      for (let p = 0; p < partitions; p++) {
        if (position[p] >= answer.ends[p]) window.markCaughtUp(p, answer.issuedAt);
        else window.markUnread(p);
      }
    }
  }
  window.flush();
  return { late, facts: logs.reduce((n, log) => n + log.length, 0), steps: expected.size };
}

test('simulation: producers with per-partition skew, bursts spanning steps, gaps up to 3T, any start delay: 0 late facts', () => {
  let previousLate = 0;
  for (let seed = 1; seed <= 30; seed++) {
    const { late, facts, steps } = simulate(seed, 'fresh-log-end');
    assert.equal(late, 0, `seed ${seed}: ${late} of ${facts} facts late over ${steps} steps`);
    previousLate += simulate(seed, 'previous').late;
  }
  // The same timelines lose facts under the previous rule, so the simulation can tell the rules apart.
  assert.ok(previousLate > 0, `previous rule: ${previousLate} late facts`);
});
