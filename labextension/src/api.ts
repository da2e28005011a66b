/** Requests to the server extension's API (Apify API v2 at <base_url>actors/api/v2) and its runs stream. */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { SseParser } from './sse';
import { Run, RunsEvent } from './types';

const settings = ServerConnection.makeSettings();

/** The absolute URL of an API path such as `v2/actor-runs/abc/log`. */
export function apiUrl(path: string): string {
  return URLExt.join(settings.baseUrl, 'actors/api', path);
}

async function request(path: string, init: RequestInit = {}): Promise<Response> {
  // 'no-cache' (revalidate) rather than the default 'no-store', which appends a cache-busting
  // query parameter that the API refuses as an unknown option.
  const response = await ServerConnection.makeRequest(apiUrl(path), { cache: 'no-cache', ...init }, settings);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).error.message ?? message;
    } catch {
      // not an Apify-shaped error: keep the status line
    }
    throw new ApiError(response.status, message);
  }
  return response;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

export async function getData<T>(path: string): Promise<T> {
  return (await (await request(path)).json()).data as T;
}

/** A JSON body as it is (no envelope) and its response's headers, e.g. dataset items. */
export async function getJson<T>(path: string): Promise<{ body: T; headers: Headers }> {
  const response = await request(path);
  return { body: (await response.json()) as T, headers: response.headers };
}

export async function postData<T>(path: string): Promise<T> {
  return (await (await request(path, { method: 'POST' })).json()).data as T;
}

/** A record's body and content type, or null when the store has no such record. */
export async function getRecord(
  storeId: string,
  key: string
): Promise<{ text: string; contentType: string | null } | null> {
  try {
    const response = await request(`v2/key-value-stores/${storeId}/records/${key}`);
    return { text: await response.text(), contentType: response.headers.get('Content-Type') };
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      return null;
    }
    throw error;
  }
}

/** Calls `onText` with the log as it grows (`?stream=true`); resolves when the run has ended. */
export async function followLog(
  runId: string,
  onText: (text: string) => void,
  signal: AbortSignal
): Promise<void> {
  const response = await request(`v2/actor-runs/${runId}/log?stream=true`, { signal });
  await readText(response, onText);
}

async function readText(response: Response, onText: (text: string) => void): Promise<void> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) {
      const rest = decoder.decode();
      if (rest) {
        onText(rest);
      }
      return;
    }
    onText(decoder.decode(value, { stream: true }));
  }
}

export type StreamState = 'connecting' | 'live' | 'polling';

/**
 * Keeps `onEvent` supplied with the runs: from the live stream (GET actors/api/stream/runs), and while
 * that is down, by polling the runs list every `pollMs` until the stream is back.
 */
export class RunsStream {
  private controller = new AbortController();
  private pollTimer: number | undefined;
  private retryMs = 1000;

  constructor(
    private onEvent: (event: RunsEvent) => void,
    private onState: (state: StreamState) => void,
    private pollMs = 5000
  ) {}

  start(): void {
    void this.connect();
  }

  dispose(): void {
    this.controller.abort();
    window.clearInterval(this.pollTimer);
  }

  private async connect(): Promise<void> {
    const signal = this.controller.signal;
    while (!signal.aborted) {
      if (this.pollTimer === undefined) {
        this.onState('connecting');
      }
      try {
        const response = await request('stream/runs', { signal });
        const parser = new SseParser();
        this.stopPolling();
        this.retryMs = 1000;
        this.onState('live');
        await readText(response, text => {
          for (const message of parser.feed(text)) {
            const data = JSON.parse(message.data);
            if (message.event === 'snapshot') {
              this.onEvent({ kind: 'snapshot', runs: data.runs });
            } else if (message.event === 'run') {
              this.onEvent({ kind: 'run', run: data });
            }
          }
        });
      } catch (error) {
        if (signal.aborted) {
          return;
        }
        console.warn('jupyter-actors: the runs stream failed, polling until it is back', error);
      }
      this.startPolling();
      await new Promise(resolve => window.setTimeout(resolve, this.retryMs));
      this.retryMs = Math.min(this.retryMs * 2, 30_000);
    }
  }

  private startPolling(): void {
    if (this.pollTimer !== undefined) {
      return;
    }
    this.onState('polling');
    const poll = async () => {
      try {
        this.onEvent({ kind: 'snapshot', runs: await listRuns() });
      } catch (error) {
        console.warn('jupyter-actors: polling the runs failed', error);
      }
    };
    void poll();
    this.pollTimer = window.setInterval(poll, this.pollMs);
  }

  private stopPolling(): void {
    window.clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }
}

/** The newest runs with their actors' names, from the list endpoints (the polling fallback). */
export async function listRuns(limit = 500): Promise<Run[]> {
  const [runs, actors] = await Promise.all([
    getData<{ items: Run[] }>(`v2/actor-runs?desc=true&limit=${limit}`),
    getData<{ items: { id: string; name: string }[] }>('v2/actors')
  ]);
  const names = new Map(actors.items.map(actor => [actor.id, actor.name]));
  return runs.items.map(run => ({ ...run, actorName: names.get(run.actId) }));
}

/** POSTs `body` (sent as it is, with its content type) and returns the response's `data`. */
export async function postBody<T>(path: string, body: BodyInit | null, contentType: string | null): Promise<T> {
  const headers: Record<string, string> = contentType ? { 'Content-Type': contentType } : {};
  return (await (await request(path, { method: 'POST', body, headers })).json()).data as T;
}

export async function deletePath(path: string): Promise<void> {
  await request(path, { method: 'DELETE' });
}

/** A record's raw bytes and content type (for a rerun's input and image previews), or null when absent. */
export async function getRecordBlob(storeId: string, key: string): Promise<Blob | null> {
  try {
    return await (await request(`v2/key-value-stores/${storeId}/records/${encodeURIComponent(key)}`)).blob();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      return null;
    }
    throw error;
  }
}

/** Like followLog, for any log path of the API (a build's: `v2/actor-builds/{id}/log`). */
export async function followText(path: string, onText: (text: string) => void, signal: AbortSignal): Promise<void> {
  await readText(await request(`${path}?stream=true`, { signal }), onText);
}
