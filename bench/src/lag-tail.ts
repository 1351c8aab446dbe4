/**
 * Where a fire-at-rate window's late occurrences come from, from `wake-ab.ts --dump <dir>`'s files:
 *
 *   node bench/src/lag-tail.ts <dir> [--late-ms 25]
 *
 * Per file (one side of one round): lateness p50/p95/p99; how many occurrences were later than
 * `--late-ms`, and whether they come alone or in bursts (late occurrences due within 50 ms of
 * each other: one stall of the whole pipeline, e.g. the worker's event loop held or no core free,
 * against a scattered tail); each burst's start (s into the window), size and worst lateness;
 * and the worker's own figures over the window from its /metrics: event-loop delay (max, p99)
 * and garbage collection (count, total pause, by kind).
 *
 * A window that holds each job's first occurrence (`--period-ms`, default 5000) gets their lateness
 * apart from the later ones'.
 *
 * Where the file has each delivery's path (`parts`), every occurrence's lateness is split into
 * its parts, and each part's p50/p99 is printed for all occurrences and its mean for the late ones:
 *   - `fetch`: due instant → BullMQ's `processedOn` (the Worker sends its `moveToActive`): Redis's
 *     wake-up (the waker's `PING` or Redis's own timer), the blocking wait's end, the Worker's loop;
 *   - `start`: → the run's `started_at` (Postgres begins the record-and-start statement): the
 *     `moveToActive` round trip, the processor's start, the group commit's wait for the previous
 *     group, the statement's way to Postgres;
 *   - `call`: → received at the sink: the statement's run and answer, the pipeline, the HTTP call.
 * Then the Worker's slots: how long an occurrence holds one, and how many occurrences found every
 * slot held at their due instant. And the box (`box`, sampled every 50 ms): its busy and steal share, and the worker's CPU, in the
 * 100 ms before each late occurrence's delivery against the window's average.
 *
 * Where `wake-ab.ts --gc-trace` left `<side>-r<round>.gc/` beside a file (V8's `--trace-gc-nvp`
 * lines and gc-observe.mjs's wall-clock events of the worker), the window's garbage collection:
 * scavenges and mark-compacts per second and their pauses, bytes allocated and promoted to the old
 * generation per occurrence, and how the late occurrences line up with the pauses: the share of
 * their lateness spent inside a pause, and how many late occurrences and bursts hold a
 * mark-compact against how many would by chance at that rate.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parseArgs } from 'node:util';
import type { WindowDetails } from './fire-bench.ts';
import { percentile } from './stats.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { 'late-ms': { type: 'string', default: '25' }, 'period-ms': { type: 'string', default: '5000' } },
});
const dir = positionals[0];
if (!dir) throw new Error('usage: node bench/src/lag-tail.ts <dir> [--late-ms 25]');
const lateMs = Number(values['late-ms']);
/** The schedules' period (wake-ab's default shape: 1,000 schedules at 200/s, every 5 s). */
const periodMs = Number(values['period-ms']);
/** Late occurrences due closer together than this belong to one burst. */
const BURST_GAP_MS = 50;
/** The worker's concurrency (the bench runs one worker at the default). */
const CONCURRENCY = 10;

const metric = (text: string, name: string, labels = ''): number => {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}` : ''}`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : Number.NaN;
};
const gcKinds = ['minor', 'major', 'incremental', 'weakcb'];

/** A main-thread GC: wall-clock start (ms), node's kind (1 minor, 4 major, 8 incremental, 16 weakcb), pause (ms). */
type GcEvent = { start: number; kind: number; ms: number };
/** One `--trace-gc-nvp` line: its wall-clock end (ms), `gc=` (s, mc, …) and its byte counts. */
type GcLine = { at: number; gc: string; pause: number; promoted: number; allocated: number; sizeAfter: number };

/**
 * The worker's GC of one window, from worker-node.sh's files: the observer's events (wall clock)
 * and V8's lines (ms since the isolate began), put on the wall clock by pairing the first
 * scavenges and mark-compacts of both in order (the shift with the tightest spread).
 */
function readGc(dir: string): { events: GcEvent[]; lines: GcLine[]; offsetSpreadMs: number } | undefined {
  const files = readdirSync(dir);
  const obsFile = files.find((f) => f.startsWith('observe-'));
  const logFile = files.find((f) => f.startsWith('worker-') && f.endsWith('.log'));
  if (!obsFile || !logFile) return undefined;
  const events = readFileSync(join(dir, obsFile), 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(' ').map(Number))
    .map(([start, kind, ms]) => ({ start: start!, kind: kind!, ms: ms! }));
  const raw = readFileSync(join(dir, logFile), 'utf8')
    .split('\n')
    .flatMap((l) => {
      const m = /^\[\d+:0x[0-9a-f]+(?::\d+)?\]\s+(\d+) ms: (pause=.*)$/.exec(l);
      if (!m) return [];
      const kv = Object.fromEntries(m[2]!.split(' ').map((p) => p.split('=') as [string, string]));
      return [
        {
          ms: Number(m[1]),
          gc: kv.gc ?? '',
          pause: Number(kv.pause),
          promoted: Number(kv.promoted ?? 0),
          allocated: Number(kv.allocated ?? 0),
          sizeAfter: Number(kv.end_object_size ?? kv.total_size_after ?? 0),
        },
      ];
    });
  const paired = events.filter((e) => e.kind === 1 || e.kind === 4);
  const kindOf = (e: GcEvent) => (e.kind === 1 ? 's' : 'mc');
  let best = { spread: Number.POSITIVE_INFINITY, offset: Number.NaN };
  for (let shift = -5; shift <= 5; shift++) {
    const diffs: number[] = [];
    for (let i = Math.max(0, -shift); i < Math.min(raw.length, 60); i++) {
      const e = paired[i + shift];
      if (!e || kindOf(e) !== raw[i]!.gc) {
        diffs.length = 0;
        break;
      }
      diffs.push(e.start + e.ms - raw[i]!.ms);
    }
    if (diffs.length < 5) continue;
    const spread = Math.max(...diffs) - Math.min(...diffs);
    if (spread < best.spread) best = { spread, offset: percentile(diffs, 50) };
  }
  if (!Number.isFinite(best.offset)) return undefined;
  const lines = raw.map(({ ms, ...rest }) => ({ at: ms + best.offset, ...rest }));
  return { events, lines, offsetSpreadMs: best.spread };
}

/** How many ms of [from, to] the events' pauses cover. */
const pausedWithin = (events: GcEvent[], from: number, to: number) =>
  events.reduce((sum, e) => sum + Math.max(0, Math.min(to, e.start + e.ms) - Math.max(from, e.start)), 0);

for (const file of readdirSync(dir)
  .filter((f) => f.endsWith('.json') || f.endsWith('.json.gz'))
  .sort()) {
  const raw = readFileSync(join(dir, file));
  const w = JSON.parse((file.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8')) as WindowDetails;
  const rows = w.deliveries.map(([due, at]) => ({ due, lag: at - due })).sort((a, b) => a.due - b.due);
  const lags = rows.map((r) => r.lag);
  const late = rows.filter((r) => r.lag > lateMs);
  const bursts: Array<{ start: number; end: number; n: number; worst: number }> = [];
  for (const r of late) {
    const last = bursts[bursts.length - 1];
    if (last && r.due - last.end <= BURST_GAP_MS) {
      last.end = r.due;
      last.n++;
      last.worst = Math.max(last.worst, r.lag);
    } else bursts.push({ start: r.due, end: r.due, n: 1, worst: r.lag });
  }
  const inBursts = bursts.filter((b) => b.n > 1).reduce((n, b) => n + b.n, 0);
  const gc = gcKinds
    .map((kind) => {
      const count =
        metric(w.workerMetricsAtEnd, 'nodejs_gc_duration_seconds_count', `kind="${kind}"`) -
        metric(w.workerMetricsAtStart, 'nodejs_gc_duration_seconds_count', `kind="${kind}"`);
      const sum =
        metric(w.workerMetricsAtEnd, 'nodejs_gc_duration_seconds_sum', `kind="${kind}"`) -
        metric(w.workerMetricsAtStart, 'nodejs_gc_duration_seconds_sum', `kind="${kind}"`);
      return Number.isFinite(count) && count > 0 ? `${kind} ${count} (${Math.round(sum * 1000)} ms)` : '';
    })
    .filter(Boolean)
    .join(', ');
  const loopMax = Math.round(metric(w.workerMetricsAtEnd, 'nodejs_eventloop_lag_max_seconds') * 1000);
  const loopP99 = Math.round(metric(w.workerMetricsAtEnd, 'nodejs_eventloop_lag_p99_seconds') * 1000);
  console.log(
    `${file}: ${rows.length} occurrences, lateness p50/p95/p99/max ${percentile(lags, 50)}/${percentile(lags, 95)}/` +
      `${percentile(lags, 99)}/${percentile(lags, 100)} ms; ${late.length} later than ${lateMs} ms, ` +
      `${inBursts} of them in ${bursts.filter((b) => b.n > 1).length} bursts, ${late.length - inBursts} alone; ` +
      `worker event-loop delay max ${loopMax} ms, p99 ${loopP99} ms; GC ${gc || 'none counted'}`,
  );
  if (w.parts?.length) {
    const split = w.parts
      .filter(([, , p, s]) => Number.isFinite(p) && Number.isFinite(s))
      .map(([due, at, p, s]) => ({ lag: at - due, fetch: p - due, start: s - p, call: at - s, at }));
    const names = ['fetch', 'start', 'call'] as const;
    const lateSplit = split.filter((x) => x.lag > lateMs);
    const mean = (xs: number[]) => (xs.length ? Math.round(xs.reduce((a, b) => a + b, 0) / xs.length) : Number.NaN);
    console.log(
      `    parts of ${split.length} (of ${w.parts.length}): ` +
        names
          .map((n) => {
            const xs = split.map((x) => x[n]);
            return `${n} p50/p99 ${percentile(xs, 50)}/${percentile(xs, 99)} ms`;
          })
          .join(', ') +
        `; the ${lateSplit.length} late: mean ${names.map((n) => `${n} ${mean(lateSplit.map((x) => x[n]))}`).join(', ')} ms`,
    );
    // Which part is the largest, for each late occurrence.
    const largest: Record<string, number> = { fetch: 0, start: 0, call: 0 };
    for (const x of lateSplit) largest[names.reduce((a, b) => (x[b] > x[a] ? b : a))]!++;
    // The Worker's slots: an occurrence holds one from its `processedOn` to its `finishedOn`. How
    // many were held at each due instant (10: none free, so nothing fetches it but a completion).
    const held = w.parts.filter(([, , p, , f]) => Number.isFinite(p) && Number.isFinite(f));
    const heldAt = (t: number) => held.reduce((n, [, , p, , f]) => (p <= t && f > t ? n + 1 : n), 0);
    const full = (rows: typeof held) => rows.filter(([due]) => heldAt(due + 2) >= CONCURRENCY).length;
    const lateHeld = held.filter(([due, at]) => at - due > lateMs);
    const holds = held.map(([, , p, , f]) => f - p);
    const finish = held.map(([, at, , , f]) => f - at);
    console.log(
      `    slot held (processedOn → finishedOn) p50/p99 ${percentile(holds, 50)}/${percentile(holds, 99)} ms ` +
        `(of which received → finishedOn p50/p99 ${percentile(finish, 50)}/${percentile(finish, 99)}); ` +
        `every slot held at the due instant: ${full(held)} of ${held.length} occurrences, ${full(lateHeld)} of the ${lateHeld.length} late`,
    );
    const box = w.box ?? [];
    const boxNear = (at: number) => box.filter(([t]) => t > at - 150 && t <= at + 50);
    const avg = (rows: typeof box, i: 1 | 2 | 3) => mean(rows.map((r) => r[i]));
    const nearLate = lateSplit.flatMap((x) => boxNear(x.at));
    console.log(
      `    largest part of the late: fetch ${largest.fetch}, start ${largest.start}, call ${largest.call}; ` +
        `box busy/steal/worker around the late ${avg(nearLate, 1)}/${avg(nearLate, 2)}/${avg(nearLate, 3)} % ` +
        `against the window's ${avg(box, 1)}/${avg(box, 2)}/${avg(box, 3)} % (box of 200, worker of 100)`,
    );
  }
  // Each job's first occurrence (due within one period of the first due instant; a window that
  // opened 2 s after it, as before it waited a whole cycle) against the later ones.
  const firstDue = w.firstDue ?? w.windowStart - 2_000;
  const firstCycle = rows.filter((r) => r.due < firstDue + periodMs).map((r) => r.lag);
  const later = rows.filter((r) => r.due >= firstDue + periodMs).map((r) => r.lag);
  if (firstCycle.length > 0)
    console.log(
      `    first occurrences (${firstCycle.length}) p50/p99 ${percentile(firstCycle, 50)}/${percentile(firstCycle, 99)} ms; ` +
        `later ones (${later.length}) ${percentile(later, 50)}/${percentile(later, 99)} ms`,
    );
  const gcDir = join(dir, file.replace(/\.json(\.gz)?$/, '.gc'));
  const trace = existsSync(gcDir) ? readGc(gcDir) : undefined;
  if (trace) {
    const { windowStart: from, windowEnd: to } = w;
    const seconds = (to - from) / 1000;
    const inWindow = trace.events.filter((e) => e.start >= from && e.start < to);
    const lines = trace.lines.filter((l) => l.at >= from && l.at < to);
    const scav = lines.filter((l) => l.gc === 's');
    const mcLines = lines.filter((l) => l.gc === 'mc');
    const minor = inWindow.filter((e) => e.kind === 1);
    const major = inWindow.filter((e) => e.kind === 4);
    const incremental = inWindow.filter((e) => e.kind === 8);
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    const kib = (bytes: number) => (bytes / 1024).toFixed(1);
    const gaps = major.slice(1).map((e, i) => Math.round(e.start - major[i]!.start));
    const pauses = (es: GcEvent[], digits: number) => {
      const ms = es.map((e) => e.ms);
      return `pause p50/max ${percentile(ms, 50).toFixed(digits)}/${Math.max(0, ...ms).toFixed(digits)} ms`;
    };
    const total = (es: GcEvent[]) => Math.round(sum(es.map((e) => e.ms)));
    const apart = gaps.length ? `${percentile(gaps, 50)} ms apart, ` : '';
    const oldAfter = mcLines.map((l) => (l.sizeAfter / 1048576).toFixed(1)).join('/');
    console.log(
      `    GC (V8's trace, on the wall clock ±${Math.ceil(trace.offsetSpreadMs)} ms): scavenges ${minor.length} ` +
        `(${(minor.length / seconds).toFixed(1)}/s, ${pauses(minor, 2)}, ${total(minor)} ms); mark-compacts ` +
        `${major.length} (${(major.length / seconds).toFixed(2)}/s, ${apart}${pauses(major, 1)}, ${total(major)} ms); ` +
        `incremental marking ${incremental.length} steps, ${total(incremental)} ms; heap objects after each mark-compact ${oldAfter} MiB`,
    );
    console.log(
      `    per occurrence (${rows.length}): allocated ${kib(sum(lines.map((l) => l.allocated)) / rows.length)} KiB, ` +
        `promoted by scavenges ${kib(sum(scav.map((l) => l.promoted)) / rows.length)} KiB`,
    );
    // The late occurrences against the pauses: how much of their lateness was a pause of the worker,
    // and how many hold a mark-compact, against what independence at this rate would give.
    const mcRate = major.length / (to - from);
    const mcMean = major.length ? sum(major.map((e) => e.ms)) / major.length : 0;
    const withMc = late.filter((r) => major.some((e) => e.start < r.due + r.lag && e.start + e.ms > r.due));
    const chance = sum(late.map((r) => Math.min(1, (r.lag + mcMean) * mcRate)));
    const paused = sum(late.map((r) => pausedWithin(inWindow, r.due, r.due + r.lag)));
    const onTime = rows.filter((r) => r.lag <= lateMs);
    const onTimePaused = sum(onTime.map((r) => pausedWithin(inWindow, r.due, r.due + r.lag)));
    const multi = bursts.filter((b) => b.n > 1);
    const burstsWithMc = multi.filter((b) => major.some((e) => e.start >= b.start - 100 && e.start <= b.end + 10));
    const burstChance = sum(multi.map((b) => Math.min(1, (b.end - b.start + 110) * mcRate)));
    const burstGaps = multi.slice(1).map((b, i) => b.start - multi[i]!.start);
    console.log(
      `    the ${late.length} late: ${Math.round(paused)} of their ${Math.round(sum(late.map((r) => r.lag)))} ms of lateness ` +
        `inside a GC pause (${((100 * paused) / Math.max(1, sum(late.map((r) => r.lag)))).toFixed(1)}%; on-time ones ` +
        `${((100 * onTimePaused) / Math.max(1, sum(onTime.map((r) => r.lag)))).toFixed(1)}%); ${withMc.length} hold a mark-compact ` +
        `(${chance.toFixed(1)} by chance); bursts with a mark-compact from 100 ms before to their end: ${burstsWithMc.length} of ` +
        `${multi.length} (${burstChance.toFixed(1)} by chance); bursts ${burstGaps.length ? percentile(burstGaps, 50) : '—'} ms apart (median)`,
    );
  }
  const worst = [...bursts].sort((a, b) => b.n - a.n).slice(0, 8);
  for (const b of worst.sort((a, b) => a.start - b.start)) {
    console.log(
      `    burst at ${((b.start - w.windowStart) / 1000).toFixed(2)} s: ${b.n} late over ${b.end - b.start} ms, worst ${b.worst} ms`,
    );
  }
}
