/**
 * A preload for a benchmark's api (`NODE_OPTIONS=--import=<abs path>/bench/src/mem-probe.mjs`, with
 * `TICKWORK_MEM_PROBE_DIR` set; `api-ab.ts --probe` does both): every 100 ms it reads
 * `process.memoryUsage()` and V8's heap spaces, and writes `<dir>/<pid>.json` once a second with the
 * latest reading and the one taken when RSS was highest. `SIGWINCH`, which no part of the api handles
 * (SIGUSR2 would close it), writes it at once and starts a new peak. Plain JavaScript, so it loads no
 * type stripper into the process it measures. Not part of any shipped process.
 */
import { writeFileSync } from 'node:fs';
import v8 from 'node:v8';

const dir = process.env.TICKWORK_MEM_PROBE_DIR;
if (dir) {
  const read = () => {
    const usage = process.memoryUsage();
    const spaces = Object.fromEntries(
      v8
        .getHeapSpaceStatistics()
        .map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size, physical: s.physical_space_size }]),
    );
    const heap = v8.getHeapStatistics();
    return {
      at: Date.now(),
      ...usage,
      malloced: heap.malloced_memory,
      peakMalloced: heap.peak_malloced_memory,
      physicalHeap: heap.total_physical_size,
      spaces,
    };
  };
  let latest = read();
  let peak = latest;
  const write = () => writeFileSync(`${dir}/${process.pid}.json`, JSON.stringify({ latest, peak }));
  const sample = setInterval(() => {
    latest = read();
    if (latest.rss > peak.rss) peak = latest;
  }, 100);
  const flush = setInterval(write, 1000);
  sample.unref();
  flush.unref();
  process.on('SIGWINCH', () => {
    latest = read();
    if (latest.rss > peak.rss) peak = latest;
    write();
    peak = latest;
  });
}
