/** Pure logic of the end-of-run notifications: the runs this browser started and waits on. */
import { isTerminal } from './runs';
import { Run } from './types';

export class WatchList {
  private ids = new Set<string>();

  add(runId: string): void {
    this.ids.add(runId);
  }

  has(runId: string): boolean {
    return this.ids.has(runId);
  }

  get size(): number {
    return this.ids.size;
  }

  /** The watched runs among `runs` that have ended; each is reported once, then no longer watched. */
  takeEnded(runs: Run[]): Run[] {
    const ended = runs.filter(run => this.ids.has(run.id) && isTerminal(run.status));
    for (const run of ended) {
      this.ids.delete(run.id);
    }
    return ended;
  }
}

/** The notification's text and kind for an ended run. */
export function endMessage(run: Run): { message: string; kind: 'success' | 'error' | 'warning' } {
  const actor = run.actorName ?? run.actId;
  const detail = run.statusMessage ? `: ${run.statusMessage}` : '';
  const kind = run.status === 'SUCCEEDED' ? 'success' : run.status === 'ABORTED' ? 'warning' : 'error';
  return { message: `Run ${run.id} of ${actor} ${run.status}${detail}`, kind };
}
