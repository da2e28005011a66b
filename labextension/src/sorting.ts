/** Pure logic of the runs list's column sort (a click on a header sorts by it, a second click reverses). */
import { actorLabel, sortRuns } from './runs';
import { runDuration } from './format';
import { Run } from './types';

export type SortColumn = 'actor' | 'status' | 'started' | 'duration' | 'memory' | 'timeout';
export interface RunSort {
  column: SortColumn;
  descending: boolean;
}

/** The panel's default: newest first. */
export const DEFAULT_SORT: RunSort = { column: 'started', descending: true };

const KEYS: Record<SortColumn, (run: Run, now: Date) => string | number> = {
  actor: run => actorLabel(run).toLowerCase(),
  status: run => run.status,
  started: run => run.startedAt ?? '',
  duration: (run, now) => runDuration(run, now),
  memory: run => run.options?.memoryMbytes ?? 0,
  timeout: run => run.options?.timeoutSecs ?? 0
};

/** The sort after a click on `column`: the same column flips, another starts ascending (time: newest first). */
export function nextSort(current: RunSort, column: SortColumn): RunSort {
  if (current.column === column) {
    return { column, descending: !current.descending };
  }
  return { column, descending: column === 'started' };
}

/** `runs` sorted by the column; equal keys keep the newest-first order, so the result is stable. */
export function sortBy(runs: Run[], sort: RunSort, now = new Date()): Run[] {
  const key = KEYS[sort.column];
  const sign = sort.descending ? -1 : 1;
  const base = sortRuns(runs);
  const rank = new Map(base.map((run, index) => [run.id, index]));
  return base.sort((a, b) => {
    const ka = key(a, now);
    const kb = key(b, now);
    const order = ka < kb ? -1 : ka > kb ? 1 : 0;
    return sign * order || rank.get(a.id)! - rank.get(b.id)!;
  });
}
