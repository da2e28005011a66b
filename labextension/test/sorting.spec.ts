import { describe, expect, it } from 'vitest';

import { DEFAULT_SORT, nextSort, sortBy } from '../src/sorting';
import { makeRun } from './fixtures';

const a = { ...makeRun('a', '2026-01-01T10:00:00Z', 'SUCCEEDED', 'zeta'), stats: { durationMillis: 5000 } };
const b = { ...makeRun('b', '2026-01-02T10:00:00Z', 'FAILED', 'alpha'), stats: { durationMillis: 1000 } };
const c = { ...makeRun('c', '2026-01-03T10:00:00Z', 'SUCCEEDED', 'Beta'), stats: { durationMillis: 9000 } };
c.options = { ...c.options, memoryMbytes: 256 };
const ids = (runs: { id: string }[]) => runs.map(run => run.id);

describe('sortBy', () => {
  it('sorts newest first by default', () => {
    expect(ids(sortBy([a, c, b], DEFAULT_SORT))).toEqual(['c', 'b', 'a']);
  });
  it('sorts by actor name, case-insensitively, both ways', () => {
    expect(ids(sortBy([a, b, c], { column: 'actor', descending: false }))).toEqual(['b', 'c', 'a']);
    expect(ids(sortBy([a, b, c], { column: 'actor', descending: true }))).toEqual(['a', 'c', 'b']);
  });
  it('sorts by duration and memory as numbers', () => {
    expect(ids(sortBy([a, b, c], { column: 'duration', descending: false }))).toEqual(['b', 'a', 'c']);
    expect(ids(sortBy([a, b, c], { column: 'memory', descending: false }))).toEqual(['c', 'b', 'a']);
  });
  it('keeps newest first among equal keys', () => {
    expect(ids(sortBy([a, b, c], { column: 'status', descending: false }))).toEqual(['b', 'c', 'a']);
  });
  it('does not change its argument', () => {
    const runs = [a, b, c];
    sortBy(runs, { column: 'actor', descending: false });
    expect(ids(runs)).toEqual(['a', 'b', 'c']);
  });
});

describe('nextSort', () => {
  it('flips the same column and starts another ascending (time: newest first)', () => {
    expect(nextSort(DEFAULT_SORT, 'started')).toEqual({ column: 'started', descending: false });
    expect(nextSort(DEFAULT_SORT, 'actor')).toEqual({ column: 'actor', descending: false });
    expect(nextSort({ column: 'actor', descending: false }, 'started')).toEqual(DEFAULT_SORT);
  });
});
