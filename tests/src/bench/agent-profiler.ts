// Preloaded into a profiled agent child (`NODE_OPTIONS=--import=<this file>`, which allows
// --import but not --cpu-prof): samples the CPU with the inspector and writes a .cpuprofile
// to $OUTPOST_BENCH_CPU_PROFILE when the process exits. With $OUTPOST_BENCH_HEAP_PROFILE set,
// it also samples allocations, garbage included (what the garbage collector has to work
// through, not only what stays alive), into that .heapprofile. A same-thread inspector session
// answers synchronously, so the profiles are written inside the 'exit' handler.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

/** Sampling interval, µs. */
const SAMPLING_INTERVAL_US = 500;
/** Allocation sampling interval, bytes (V8's default is 32 KiB). */
const HEAP_SAMPLING_INTERVAL_BYTES = 16 * 1024;

const cpuOut = process.env['OUTPOST_BENCH_CPU_PROFILE'];
const heapOut = process.env['OUTPOST_BENCH_HEAP_PROFILE'];
// Our own children (the inference process) inherit NODE_OPTIONS; only the first process profiles.
delete process.env['OUTPOST_BENCH_CPU_PROFILE'];
delete process.env['OUTPOST_BENCH_HEAP_PROFILE'];
if ((cpuOut !== undefined && cpuOut !== '') || (heapOut !== undefined && heapOut !== '')) {
  const session = new Session();
  session.connect();
  if (cpuOut !== undefined && cpuOut !== '') {
    session.post('Profiler.enable');
    session.post('Profiler.setSamplingInterval', { interval: SAMPLING_INTERVAL_US });
    session.post('Profiler.start');
  }
  if (heapOut !== undefined && heapOut !== '') {
    session.post('HeapProfiler.enable');
    session.post('HeapProfiler.startSampling', { samplingInterval: HEAP_SAMPLING_INTERVAL_BYTES, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as never);
  }
  process.on('exit', () => {
    if (cpuOut !== undefined && cpuOut !== '') {
      session.post('Profiler.stop', (error, result) => {
        if (error === null) writeFileSync(cpuOut, JSON.stringify(result.profile));
      });
    }
    if (heapOut !== undefined && heapOut !== '') {
      session.post('HeapProfiler.stopSampling', (error, result) => {
        if (error === null) writeFileSync(heapOut, JSON.stringify(result.profile));
      });
    }
  });
}
