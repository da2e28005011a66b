import { describe, expect, it } from 'vitest';

import { actorNames, applyEvent, filterRuns, isTerminal, MAX_RUNS, sortRuns } from '../src/runs';
import { makeRun } from './fixtures';

describe('applyEvent', () => {
  it('takes a snapshot as the new list, newest first', () => {
    const runs = applyEvent([makeRun('x', '2026-01-01T00:00:00.000Z')], {
      kind: 'snapshot',
      runs: [makeRun('a', '2026-01-01T10:00:00.000Z'), makeRun('b', '2026-01-01T11:00:00.000Z')]
    });
    expect(runs.map(r => r.id)).toEqual(['b', 'a']);
  });

  it('puts a new run first and replaces a changed one in place', () => {
    let runs = applyEvent([], { kind: 'snapshot', runs: [makeRun('a', '2026-01-01T10:00:00.000Z')] });
    runs = applyEvent(runs, { kind: 'run', run: makeRun('b', '2026-01-01T12:00:00.000Z', 'READY') });
    runs = applyEvent(runs, { kind: 'run', run: makeRun('b', '2026-01-01T12:00:00.000Z', 'RUNNING') });
    expect(runs.map(r => [r.id, r.status])).toEqual([['b', 'RUNNING'], ['a', 'SUCCEEDED']]);
    runs = applyEvent(runs, { kind: 'run', run: makeRun('a', '2026-01-01T10:00:00.000Z', 'ABORTED') });
    expect(runs.map(r => [r.id, r.status])).toEqual([['b', 'RUNNING'], ['a', 'ABORTED']]);
  });

  it('keeps a known actor name when an update comes without one', () => {
    let runs = applyEvent([], { kind: 'snapshot', runs: [makeRun('a', '2026-01-01T10:00:00.000Z')] });
    const bare = { ...makeRun('a', '2026-01-01T10:00:00.000Z', 'FAILED'), actorName: undefined };
    runs = applyEvent(runs, { kind: 'run', run: bare });
    expect(runs[0].actorName).toBe('hello');
    expect(runs[0].status).toBe('FAILED');
  });

  it('does not grow past MAX_RUNS', () => {
    const many = Array.from({ length: MAX_RUNS + 5 }, (_, i) =>
      makeRun(`r${i}`, new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString())
    );
    const runs = applyEvent([], { kind: 'snapshot', runs: many });
    expect(runs).toHaveLength(MAX_RUNS);
    expect(runs[0].id).toBe(`r${MAX_RUNS + 4}`);
  });
});

describe('sortRuns', () => {
  it('orders by start time then id, without changing its input', () => {
    const input = [
      makeRun('a', '2026-01-01T10:00:00.000Z'),
      makeRun('c', '2026-01-01T10:00:00.000Z'),
      makeRun('b', '2026-01-02T09:00:00.000Z')
    ];
    expect(sortRuns(input).map(r => r.id)).toEqual(['b', 'c', 'a']);
    expect(input.map(r => r.id)).toEqual(['a', 'c', 'b']);
  });
});

describe('filterRuns', () => {
  const runs = [
    makeRun('1', '2026-01-01T10:00:00.000Z', 'RUNNING', 'crawler'),
    makeRun('2', '2026-01-01T09:00:00.000Z', 'SUCCEEDED', 'crawler'),
    makeRun('3', '2026-01-01T08:00:00.000Z', 'FAILED', 'hello'),
    makeRun('4', '2026-01-01T07:00:00.000Z', 'ABORTING', 'hello')
  ];
  const ids = (status: string, actor: string) => filterRuns(runs, { status, actor }).map(r => r.id);

  it('filters by status, by not finished, by actor and by both', () => {
    expect(ids('', '')).toEqual(['1', '2', '3', '4']);
    expect(ids('FAILED', '')).toEqual(['3']);
    expect(ids('active', '')).toEqual(['1', '4']);
    expect(ids('', 'hello')).toEqual(['3', '4']);
    expect(ids('active', 'crawler')).toEqual(['1']);
    expect(ids('SUCCEEDED', 'hello')).toEqual([]);
  });

  it('offers each actor once, sorted, falling back to the actor id', () => {
    const unnamed = { ...makeRun('5', '2026-01-01T06:00:00.000Z'), actorName: undefined, actId: 'zz9' };
    expect(actorNames([...runs, unnamed])).toEqual(['crawler', 'hello', 'zz9']);
  });

  it('knows the terminal statuses', () => {
    expect(['SUCCEEDED', 'FAILED', 'TIMED-OUT', 'ABORTED'].every(isTerminal)).toBe(true);
    expect(['READY', 'RUNNING', 'TIMING-OUT', 'ABORTING'].some(isTerminal)).toBe(false);
  });
});
