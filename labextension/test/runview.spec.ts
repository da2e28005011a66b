import { describe, expect, it } from 'vitest';

import { applyRun, clockText, fromBundle, memoryText, RUN_MIME, shortStamps } from '../src/runview';
import { MB } from '../src/usage';
import { makeRun } from './fixtures';

/** A bundle as live.py's LiveView.state() saves it while the run runs. */
const SAVED = {
  id: 'r1', status: 'RUNNING', statusMessage: null, elapsedSecs: 12.3, timeoutSecs: 120, memoryMbytes: 1024,
  memoryUsedBytes: 50 * MB, logLines: 7, note: '', containerUrl: 'http://x/web/', spark: { memMb: [40, 50], cpuPct: [3, 4] },
  peak: ''
};

describe('fromBundle', () => {
  it('takes the saved state as it is, marked as saved', () => {
    const state = fromBundle(SAVED);
    expect(state).toMatchObject({ id: 'r1', status: 'RUNNING', statusMessage: '', timeoutSecs: 120, source: 'saved' });
    expect(clockText(state)).toBe('12 s / 120 s');
    expect(memoryText(state)).toBe('50 / 1024 MB');
  });

  it('refuses a bundle without a run id, saying what is missing', () => {
    expect(() => fromBundle({ status: 'RUNNING' })).toThrow(`The ${RUN_MIME} output names no run (it has no "id").`);
    expect(() => fromBundle(null)).toThrow(/names no run/);
  });
});

describe('applyRun', () => {
  it('takes status, times and the current memory from the running run', () => {
    const run = {
      ...makeRun('r1', '2026-01-01T10:00:00.000Z', 'RUNNING'),
      containerUrl: 'http://x/web/',
      stats: { durationMillis: 0, memCurrentBytes: 80 * MB, memMaxBytes: 90 * MB }
    };
    const state = applyRun(fromBundle(SAVED), run);
    expect(state).toMatchObject({ status: 'RUNNING', source: 'live', memoryUsedBytes: 80 * MB, peak: '', containerUrl: 'http://x/web/' });
    expect(clockText(state, new Date('2026-01-01T10:00:30.000Z'))).toBe('30 s / 3600 s'); // from the clock, not as saved
  });

  it('gives an ended run its peak line, its duration and no web server link', () => {
    const run = {
      ...makeRun('r1', '2026-01-01T10:00:00.000Z', 'SUCCEEDED'),
      finishedAt: '2026-01-01T10:00:45.000Z',
      containerUrl: 'http://x/web/',
      stats: { durationMillis: 45000, memCurrentBytes: 0, memMaxBytes: 40 * MB }
    };
    const state = applyRun(fromBundle(SAVED), run);
    expect(state.peak).toBe('peak 40 MB of 1024 MB - a 128 MB limit would do');
    expect(state.memoryUsedBytes).toBe(40 * MB);
    expect(state.containerUrl).toBeNull();
    expect(clockText(state, new Date('2026-01-01T11:00:00.000Z'))).toBe('45 s / 3600 s');
  });

  it('says an out-of-memory failure ran out of memory', () => {
    const run = {
      ...makeRun('r1', '2026-01-01T10:00:00.000Z', 'FAILED'),
      statusMessage: 'The run exceeded its memory limit (1024 MB)',
      stats: { durationMillis: 1000, memMaxBytes: 1000 * MB }
    };
    expect(applyRun(fromBundle(SAVED), run).peak).toBe(
      'peak 1000 MB of 1024 MB - it ran out of memory: raise the memory (--memory 2048)'
    );
  });

  it('keeps the saved memory while the server has not measured any', () => {
    const run = makeRun('r1', '2026-01-01T10:00:00.000Z', 'RUNNING');
    expect(applyRun(fromBundle(SAVED), run).memoryUsedBytes).toBe(50 * MB);
  });
});

describe('shortStamps', () => {
  it('shortens each line’s ISO timestamp to the time of day and leaves other text alone', () => {
    const log = '2026-12-03T20:18:22.949Z [apify] INFO tick 1\nplain 2026-12-03T20:18:22Z line\n2026-12-03T20:18:23Z done';
    expect(shortStamps(log)).toBe('20:18:22 [apify] INFO tick 1\nplain 2026-12-03T20:18:22Z line\n20:18:23 done');
  });
});
