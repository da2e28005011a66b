/** The run object of the API (GET /v2/actor-runs/{id}), plus `actorName` on the runs stream. */
export interface Run {
  id: string;
  actId: string;
  actorName?: string;
  status: string;
  statusMessage: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  isTerminal?: boolean;
  options: { build: string; memoryMbytes: number; timeoutSecs: number };
  stats: { durationMillis: number };
  buildNumber: string | null;
  exitCode: number | null;
  timeoutAt: string | null;
  defaultKeyValueStoreId: string;
  defaultDatasetId: string;
  defaultRequestQueueId?: string;
  /** The run's web server, when it serves one. */
  containerUrl?: string | null;
}

/** What the runs stream (or the polling fallback) delivers. */
export type RunsEvent =
  | { kind: 'snapshot'; runs: Run[] }
  | { kind: 'run'; run: Run };
