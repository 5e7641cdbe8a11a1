import { describe, expect, it } from 'vitest';
import { compareModelVersions } from './version.js';

describe('compareModelVersions', () => {
  it('orders numerically part by part, prefixes first, build metadata ignored', () => {
    const sorted = ['1.10.0', '1.2', '1.9.2', '1.2.1', '0.9', '2.0.0', '1.2.1+build.7'].sort(compareModelVersions);
    expect(sorted).toEqual(['0.9', '1.2', '1.2.1', '1.2.1+build.7', '1.9.2', '1.10.0', '2.0.0']);
    expect(compareModelVersions('1.2.1', '1.2.1+x')).toBe(0);
    expect(compareModelVersions('1.0.0-rc1', '1.0.0-rc2')).toBeLessThan(0);
  });
});
