// Preloaded into a profiled agent child (`NODE_OPTIONS=--import=<this file>`, which allows
// --import but not --cpu-prof): samples the CPU with the inspector and writes a .cpuprofile
// to $OUTPOST_BENCH_CPU_PROFILE when the process exits. A same-thread inspector session
// answers synchronously, so the profile is written inside the 'exit' handler.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

/** Sampling interval, µs. */
const SAMPLING_INTERVAL_US = 500;

const out = process.env['OUTPOST_BENCH_CPU_PROFILE'];
if (out !== undefined && out !== '') {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: SAMPLING_INTERVAL_US });
  session.post('Profiler.start');
  process.on('exit', () => {
    session.post('Profiler.stop', (error, result) => {
      if (error === null) writeFileSync(out, JSON.stringify(result.profile));
    });
  });
}
