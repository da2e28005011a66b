import { describe, expect, it } from 'vitest';

import { endMessage, WatchList } from '../src/watch';
import { makeRun } from './fixtures';

describe('WatchList', () => {
  it('reports a watched run once when it ends, and no other run', () => {
    const list = new WatchList();
    list.add('a');
    expect(list.takeEnded([makeRun('a', '2026-01-01T10:00:00.000Z', 'RUNNING')])).toEqual([]);
    const ended = list.takeEnded([
      makeRun('a', '2026-01-01T10:00:00.000Z', 'SUCCEEDED'),
      makeRun('b', '2026-01-01T10:00:00.000Z', 'FAILED')
    ]);
    expect(ended.map(run => run.id)).toEqual(['a']);
    expect(list.size).toBe(0);
    expect(list.takeEnded([makeRun('a', '2026-01-01T10:00:00.000Z', 'SUCCEEDED')])).toEqual([]);
  });
});

describe('endMessage', () => {
  it('names the run, its actor and how it ended', () => {
    expect(endMessage(makeRun('a', '2026-01-01T10:00:00.000Z', 'SUCCEEDED'))).toEqual({ message: 'Run a of hello SUCCEEDED', kind: 'success' });
    const failed = { ...makeRun('a', '2026-01-01T10:00:00.000Z', 'FAILED'), statusMessage: 'exit code 1' };
    expect(endMessage(failed)).toEqual({ message: 'Run a of hello FAILED: exit code 1', kind: 'error' });
    expect(endMessage(makeRun('a', '2026-01-01T10:00:00.000Z', 'ABORTED')).kind).toBe('warning');
  });
});
