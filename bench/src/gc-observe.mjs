// Preloaded (`--import`) by worker-node.sh into a bench's worker when BENCH_GC_DIR is set: every
// GC of the main thread, as the perf_hooks observer reports it, one line each to
// <BENCH_GC_DIR>/observe-<pid>.txt: `<start, ms since the epoch> <kind> <duration ms>`, kind as
// node names it (1 minor, 4 major, 8 incremental, 16 weakcb). V8's `--trace-gc` lines say what
// each collection moved but only in ms since the isolate began; these give the wall clock
// lag-tail.ts lines them up with the deliveries by.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { PerformanceObserver, performance } from 'node:perf_hooks';

const file = join(process.env.BENCH_GC_DIR ?? '.', `observe-${process.pid}.txt`);
const origin = performance.timeOrigin;
new PerformanceObserver((list) => {
  let text = '';
  for (const e of list.getEntries())
    text += `${(origin + e.startTime).toFixed(2)} ${e.detail?.kind ?? 0} ${e.duration.toFixed(3)}\n`;
  appendFileSync(file, text);
}).observe({ entryTypes: ['gc'] });

// BENCH_HEAP_SAMPLE=<ms>: from that long after the start until the process exits, V8's sampling
// heap profiler with the objects that died in a mark-compact kept (not those a scavenge took):
// what was allocated and lived long enough to be promoted, by allocation site, to
// <BENCH_GC_DIR>/heap-<pid>.heapprofile at exit (DevTools' format; `heap-top.ts` lists it).
if (process.env.BENCH_HEAP_SAMPLE) {
  const { Session } = await import('node:inspector');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  setTimeout(() => {
    session.post('HeapProfiler.startSampling', {
      samplingInterval: 8192,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: false,
    });
  }, Number(process.env.BENCH_HEAP_SAMPLE)).unref();
  process.on('exit', () => {
    // The session is this thread's: the answer comes before post returns.
    session.post('HeapProfiler.stopSampling', (err, result) => {
      if (!err)
        writeFileSync(
          join(process.env.BENCH_GC_DIR ?? '.', `heap-${process.pid}.heapprofile`),
          JSON.stringify(result.profile),
        );
    });
  });
}
