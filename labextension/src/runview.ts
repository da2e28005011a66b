/**
 * Pure state of the run renderer: what the notebook saved in its run bundle, then the run as the server
 * has it now (the API and the runs stream), merged so the newest source wins field by field.
 */
import { isTerminal } from './runs';
import { Run } from './types';
import { peakLine } from './usage';

/** The MIME type of the notebook live view's bundle part (jupyter_actors/notebook/live.py). */
export const RUN_MIME = 'application/vnd.jupyter-actors.run+json';

/** The run bundle's state as live.py's LiveView.state() writes it. */
export interface RunBundle {
  id: string;
  status?: string | null;
  statusMessage?: string | null;
  elapsedSecs?: number;
  timeoutSecs?: number | null;
  memoryMbytes?: number | null;
  memoryUsedBytes?: number | null;
  logLines?: number;
  note?: string;
  containerUrl?: string | null;
  spark?: { memMb?: number[]; cpuPct?: number[] };
  peak?: string;
}

/** The memory fields of a run's stats (beyond types.ts's Run, which the panel does not need). */
export interface MemoryStats {
  memMaxBytes?: number;
  memCurrentBytes?: number;
  memAvgBytes?: number;
  durationMillis?: number;
}

/** Where the shown state comes from: the saved bundle only, the server, or the server does not know the run. */
export type StateSource = 'saved' | 'live' | 'missing';

export interface RunViewState {
  id: string;
  status: string;
  statusMessage: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** Seconds run so far, as saved; with `startedAt` known it is recomputed from the clock. */
  elapsedSecs: number;
  timeoutSecs: number | null;
  memoryMbytes: number | null;
  memoryUsedBytes: number | null;
  containerUrl: string | null;
  peak: string;
  spark: { memMb?: number[]; cpuPct?: number[] };
  source: StateSource;
}

/** The renderer's state from a bundle; throws a clear error when the bundle names no run. */
export function fromBundle(data: unknown): RunViewState {
  if (data === null || typeof data !== 'object' || typeof (data as RunBundle).id !== 'string' || !(data as RunBundle).id) {
    throw new Error(`The ${RUN_MIME} output names no run (it has no "id").`);
  }
  const bundle = data as RunBundle;
  return {
    id: bundle.id,
    status: bundle.status ?? 'UNKNOWN',
    statusMessage: bundle.statusMessage ?? '',
    startedAt: null,
    finishedAt: null,
    elapsedSecs: bundle.elapsedSecs ?? 0,
    timeoutSecs: bundle.timeoutSecs ?? null,
    memoryMbytes: bundle.memoryMbytes ?? null,
    memoryUsedBytes: bundle.memoryUsedBytes ?? null,
    containerUrl: bundle.containerUrl ?? null,
    peak: bundle.peak ?? '',
    spark: bundle.spark ?? {},
    source: 'saved'
  };
}

/** The state with the server's run applied: status, times, limits, memory now (or its peak once ended). */
export function applyRun(state: RunViewState, run: Run): RunViewState {
  const stats = (run.stats ?? {}) as MemoryStats;
  const ended = isTerminal(run.status);
  const memoryMbytes = run.options?.memoryMbytes ?? state.memoryMbytes;
  const used = ended ? stats.memMaxBytes : (stats.memCurrentBytes ?? stats.memAvgBytes);
  const oomKilled = run.status === 'FAILED' && /exceeded its memory limit/.test(run.statusMessage ?? '');
  return {
    ...state,
    status: run.status,
    statusMessage: run.statusMessage ?? '',
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
    timeoutSecs: run.options?.timeoutSecs ?? state.timeoutSecs,
    memoryMbytes,
    memoryUsedBytes: typeof used === 'number' ? used : state.memoryUsedBytes,
    containerUrl: ended ? null : (run.containerUrl ?? null),
    peak: ended && memoryMbytes ? peakLine(stats.memMaxBytes, memoryMbytes, oomKilled) : '',
    source: 'live'
  };
}

/** Seconds the run has taken (to `now` while it runs), from its times when known, else as saved. */
export function elapsedSecs(state: RunViewState, now: Date = new Date()): number {
  if (!state.startedAt) {
    return state.elapsedSecs;
  }
  const end = state.finishedAt ? Date.parse(state.finishedAt) : now.getTime();
  return Math.max(0, (end - Date.parse(state.startedAt)) / 1000);
}

/** "12 s / 120 s", or "12 s (no timeout)", as the notebook's live view says it. */
export function clockText(state: RunViewState, now: Date = new Date()): string {
  const secs = Math.round(elapsedSecs(state, now));
  return state.timeoutSecs ? `${secs} s / ${state.timeoutSecs} s` : `${secs} s (no timeout)`;
}

/** "312 / 1024 MB" while memory is known, else the limit alone. */
export function memoryText(state: RunViewState): string {
  const limit = state.memoryMbytes ? `${state.memoryMbytes} MB` : '';
  if (state.memoryUsedBytes === null || state.memoryUsedBytes === undefined) {
    return limit;
  }
  return `${Math.round(state.memoryUsedBytes / 2 ** 20)} / ${limit || '? MB'}`;
}

/** Log lines' ISO timestamps as the time of day ("2026-12-03T20:18:22.949Z x" -> "20:18:22 x"), as the live view. */
export function shortStamps(text: string): string {
  return text.replace(/^\d{4}-\d\d-\d\dT(\d\d:\d\d:\d\d)(\.\d+)?Z /gm, '$1 ');
}
