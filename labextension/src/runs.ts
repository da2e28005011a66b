/** Pure logic of the runs list: applying stream events, order, filters. */
import { Run, RunsEvent } from './types';

export const TERMINAL_STATUSES = ['SUCCEEDED', 'FAILED', 'TIMED-OUT', 'ABORTED'];
export const ALL_STATUSES = [
  'READY', 'RUNNING', 'SUCCEEDED', 'FAILED', 'TIMING-OUT', 'TIMED-OUT', 'ABORTING', 'ABORTED'
];
/** The panel keeps at most this many runs (the stream's snapshot sends 500). */
export const MAX_RUNS = 1000;

export function isTerminal(status: string): boolean {
  return TERMINAL_STATUSES.includes(status);
}

/** Newest first (by start time, ISO strings compare in time order); ties by id, for a stable order. */
export function sortRuns(runs: Run[]): Run[] {
  return [...runs].sort(
    (a, b) =>
      (b.startedAt ?? '').localeCompare(a.startedAt ?? '') || b.id.localeCompare(a.id)
  );
}

/** The runs after one event: a snapshot replaces them, a run event inserts or replaces that run. */
export function applyEvent(runs: Run[], event: RunsEvent): Run[] {
  if (event.kind === 'snapshot') {
    return sortRuns(event.runs).slice(0, MAX_RUNS);
  }
  const run = event.run;
  const previous = runs.find(r => r.id === run.id);
  const merged = { ...run, actorName: run.actorName ?? previous?.actorName };
  const others = runs.filter(r => r.id !== run.id);
  return sortRuns([merged, ...others]).slice(0, MAX_RUNS);
}

export interface RunFilter {
  /** '' for every status, 'active' for runs not finished yet, or one status. */
  status: string;
  /** '' for every actor, or an actor's name. */
  actor: string;
}

export function actorLabel(run: Run): string {
  return run.actorName || run.actId;
}

export function filterRuns(runs: Run[], filter: RunFilter): Run[] {
  return runs.filter(run => {
    if (filter.actor && actorLabel(run) !== filter.actor) {
      return false;
    }
    if (filter.status === 'active') {
      return !isTerminal(run.status);
    }
    return !filter.status || run.status === filter.status;
  });
}

/** The actor names to offer in the filter, sorted. */
export function actorNames(runs: Run[]): string[] {
  return [...new Set(runs.map(actorLabel))].sort();
}
