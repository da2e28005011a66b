/** Pure logic of the panel's actions: starting runs (the form's options, a rerun), storages (pages, previews), builds. */
import { isTerminal } from './runs';
import { Run } from './types';

export interface RunOptions {
  /** Megabytes; undefined: the actor's default. */
  memoryMbytes?: number;
  /** Seconds (0: no timeout); undefined: the actor's default. */
  timeoutSecs?: number;
  /** A build tag or number; undefined: the actor's default build. */
  build?: string;
}

/** The API path that starts a run of `actorId` with these options (POST, the input as the body). */
export function startPath(actorId: string, options: RunOptions): string {
  const query = new URLSearchParams();
  if (options.build) {
    query.set('build', options.build);
  }
  if (options.memoryMbytes !== undefined) {
    query.set('memory', String(options.memoryMbytes));
  }
  if (options.timeoutSecs !== undefined) {
    query.set('timeout', String(options.timeoutSecs));
  }
  const text = query.toString();
  return `v2/acts/${encodeURIComponent(actorId)}/runs${text ? `?${text}` : ''}`;
}

/** A rerun: the same actor, build and run options as `run` (its input is sent as stored). */
export function rerunPath(run: Run): string {
  return startPath(run.actId, {
    build: run.options.build,
    memoryMbytes: run.options.memoryMbytes,
    timeoutSecs: run.options.timeoutSecs
  });
}

/** A number field's value: '' means "the actor's default" (undefined); anything else must be a whole number >= min. */
export function parseWhole(text: string, name: string, min: number): number | undefined {
  const trimmed = text.trim();
  if (!trimmed) {
    return undefined;
  }
  const value = Number(trimmed);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`${name} must be a whole number of at least ${min}, not "${trimmed}"`);
  }
  return value;
}

export interface Page {
  offset: number;
  limit: number;
  total: number;
}

/** "1–20 of 45" (or "No items"). */
export function pageLabel(page: Page, shown: number): string {
  if (!page.total || !shown) {
    return 'No items';
  }
  return `${page.offset + 1}–${page.offset + shown} of ${page.total}`;
}

/** The offset of the previous / next page, or null at either end. */
export function pageOffsets(page: Page): { previous: number | null; next: number | null } {
  return {
    previous: page.offset > 0 ? Math.max(0, page.offset - page.limit) : null,
    next: page.offset + page.limit < page.total ? page.offset + page.limit : null
  };
}

/** The dataset's items as a file in each export format the API has. */
export function exportPaths(datasetId: string): { label: string; path: string }[] {
  const formats: [string, string][] = [['CSV', 'csv'], ['JSONL', 'jsonl'], ['JSON', 'json'], ['Excel (xlsx)', 'xlsx']];
  return formats.map(([label, format]) => ({
    label,
    path: `v2/datasets/${datasetId}/items?format=${format}&attachment=true`
  }));
}

export type PreviewKind = 'json' | 'text' | 'image' | 'html' | 'none';

/**
 * Raster images the browser shows as <img> (never SVG: it could script); JSON; text; HTML (shown only
 * in an iframe sandboxed without scripts or Lab's origin); else none.
 */
export function previewKind(contentType: string | null): PreviewKind {
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (type === 'text/html') {
    return 'html';
  }
  if (/^image\/(png|jpeg|gif|webp)$/.test(type)) {
    return 'image';
  }
  if (type === 'application/json' || type.endsWith('+json')) {
    return 'json';
  }
  if (type === 'text/plain' || type === 'text/csv') {
    return 'text';
  }
  return 'none';
}

/** 1536 -> "1.5 kB". */
export function formatBytes(size: number | null | undefined): string {
  if (size === null || size === undefined) {
    return '';
  }
  if (size < 1000) {
    return `${size} B`;
  }
  const units = ['kB', 'MB', 'GB'];
  let value = size;
  let unit = '';
  for (const next of units) {
    value /= 1000;
    unit = next;
    if (value < 1000) {
      break;
    }
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${unit}`;
}

/** A build as the API lists it. */
export interface Build {
  id: string;
  status: string;
  buildNumber: string;
  startedAt: string | null;
  finishedAt: string | null;
  stats?: { durationMillis?: number };
}

/** The build's duration: its stats when finished, else from its start until now. */
export function buildDuration(build: Build, now = new Date()): number | null {
  if (!build.startedAt) {
    return null;
  }
  if (isTerminal(build.status) && build.stats?.durationMillis) {
    return build.stats.durationMillis;
  }
  const end = isTerminal(build.status) && build.finishedAt ? new Date(build.finishedAt) : now;
  return Math.max(0, end.getTime() - new Date(build.startedAt).getTime());
}
