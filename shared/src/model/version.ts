/**
 * Orders model versions: dot-separated parts compared numerically when both are numbers
 * (`1.10.0` > `1.9.2`), as text otherwise; a version that is a prefix of another is lower
 * (`1.2` < `1.2.1`). Build metadata after `+` is ignored. Negative when `a` < `b`, 0 when equal.
 */
export function compareModelVersions(a: string, b: string): number {
  const parts = (v: string): string[] => v.split('+')[0]!.split(/[.-]/);
  const pa = parts(a);
  const pb = parts(b);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const nx = /^\d+$/.test(x) ? Number(x) : undefined;
    const ny = /^\d+$/.test(y) ? Number(y) : undefined;
    if (nx !== undefined && ny !== undefined) {
      if (nx !== ny) return nx < ny ? -1 : 1;
    } else if (x !== y) {
      return x < y ? -1 : 1;
    }
  }
  return 0;
}
