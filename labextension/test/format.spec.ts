import { describe, expect, it } from 'vitest';

import {
  formatDuration, formatMemory, formatStarted, formatTimeout, prettyBody, runDuration, statusKind, tableOf
} from '../src/format';
import { makeRun } from './fixtures';

describe('formatting', () => {
  it('formats durations for people', () => {
    expect(formatDuration(860)).toBe('0.9 s');
    expect(formatDuration(9_940)).toBe('9.9 s');
    expect(formatDuration(42_000)).toBe('42 s');
    expect(formatDuration(75_000)).toBe('1 min 15 s');
    expect(formatDuration(120_000)).toBe('2 min');
    expect(formatDuration(3_725_000)).toBe('1 h 2 min');
    expect(formatDuration(7_200_000)).toBe('2 h');
    expect(formatDuration(null)).toBe('');
    expect(formatDuration(-1)).toBe('');
  });

  it('formats memory and timeouts', () => {
    expect(formatMemory(256)).toBe('256 MB');
    expect(formatMemory(4096)).toBe('4 GB');
    expect(formatMemory(0)).toBe('');
    expect(formatTimeout(0)).toBe('none');
    expect(formatTimeout(3600)).toBe('1 h');
    expect(formatTimeout(90)).toBe('1 min 30 s');
  });

  it('shows the time for today and the date for other days, in local time', () => {
    const now = new Date(2026, 10, 22, 15, 0, 0);
    expect(formatStarted(new Date(2026, 10, 22, 14, 3, 7).toISOString(), now)).toBe('14:03:07');
    expect(formatStarted(new Date(2026, 10, 21, 9, 5, 0).toISOString(), now)).toBe('2026-11-21 09:05');
    expect(formatStarted(null, now)).toBe('');
    expect(formatStarted('not a date', now)).toBe('not a date');
  });

  it('counts the duration of an unfinished run up to now', () => {
    const now = new Date('2026-01-01T10:00:05.000Z');
    expect(runDuration(makeRun('a', '2026-01-01T10:00:00.000Z', 'RUNNING'), now)).toBe(5000);
    expect(runDuration(makeRun('a', '2026-01-01T10:00:00.000Z', 'SUCCEEDED'), now)).toBe(1500);
  });

  it('groups statuses into badge colours', () => {
    expect(statusKind('SUCCEEDED')).toBe('ok');
    expect(statusKind('FAILED')).toBe('error');
    expect(statusKind('TIMED-OUT')).toBe('error');
    expect(statusKind('ABORTED')).toBe('stopped');
    expect(statusKind('RUNNING')).toBe('active');
    expect(statusKind('READY')).toBe('active');
  });
});

describe('tableOf', () => {
  it('takes columns in order of first appearance and renders cells as text', () => {
    const { columns, rows } = tableOf([
      { url: 'a', n: 1 },
      { n: 2, tags: ['x'], extra: { deep: true } },
      'plain',
      null
    ]);
    expect(columns).toEqual(['url', 'n', 'tags', 'extra', 'value']);
    expect(rows).toEqual([
      ['a', '1', '', '', ''],
      ['', '2', '["x"]', '{"deep":true}', ''],
      ['', '', '', '', 'plain'],
      ['', '', '', '', '']
    ]);
  });
});

describe('prettyBody', () => {
  it('indents JSON and leaves text alone', () => {
    expect(prettyBody('{"a":1}', 'application/json; charset=utf-8')).toBe('{\n  "a": 1\n}');
    expect(prettyBody('[1]', null)).toBe('[\n  1\n]');
    expect(prettyBody('{broken', 'application/json')).toBe('{broken');
    expect(prettyBody('hello', 'text/plain')).toBe('hello');
  });
});
