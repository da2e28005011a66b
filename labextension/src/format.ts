/** Pure formatting of run fields for the panel and the detail view. */
import { Run } from './types';
import { isTerminal } from './runs';

const pad = (n: number): string => String(n).padStart(2, '0');

/** 850 ms -> "0.9 s", 75 s -> "1 min 15 s", 3725 s -> "1 h 2 min". */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !isFinite(ms) || ms < 0) {
    return '';
  }
  if (ms < 10_000) {
    return `${(ms / 1000).toFixed(1)} s`;
  }
  const secs = Math.floor(ms / 1000);
  if (secs < 60) {
    return `${secs} s`;
  }
  const mins = Math.floor(secs / 60);
  if (mins < 60) {
    return secs % 60 ? `${mins} min ${secs % 60} s` : `${mins} min`;
  }
  const hours = Math.floor(mins / 60);
  return mins % 60 ? `${hours} h ${mins % 60} min` : `${hours} h`;
}

/** 1024 -> "1 GB", 256 -> "256 MB". */
export function formatMemory(mb: number | null | undefined): string {
  if (!mb) {
    return '';
  }
  return mb % 1024 === 0 ? `${mb / 1024} GB` : `${mb} MB`;
}

/** 0 means no timeout. */
export function formatTimeout(secs: number | null | undefined): string {
  if (secs === null || secs === undefined) {
    return '';
  }
  return secs === 0 ? 'none' : formatDuration(secs * 1000);
}

/** Local time: "14:03:07" today, "2026-11-21 14:03" on another day. */
export function formatStarted(iso: string | null, now: Date = new Date()): string {
  if (!iso) {
    return '';
  }
  const t = new Date(iso);
  if (isNaN(t.getTime())) {
    return iso;
  }
  const time = `${pad(t.getHours())}:${pad(t.getMinutes())}`;
  if (t.toDateString() === now.toDateString()) {
    return `${time}:${pad(t.getSeconds())}`;
  }
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${time}`;
}

/** How long the run took, or has been going on for while it is not finished. */
export function runDuration(run: Run, now: Date = new Date()): number {
  if (!isTerminal(run.status) && run.startedAt) {
    return Math.max(0, now.getTime() - new Date(run.startedAt).getTime());
  }
  return run.stats?.durationMillis ?? 0;
}

/** The badge colour group of a status. */
export function statusKind(status: string): 'ok' | 'error' | 'active' | 'stopped' {
  switch (status) {
    case 'SUCCEEDED':
      return 'ok';
    case 'FAILED':
    case 'TIMED-OUT':
      return 'error';
    case 'ABORTED':
    case 'ABORTING':
    case 'TIMING-OUT':
      return 'stopped';
    default:
      return 'active';
  }
}

/** Columns (keys in order of first appearance) and cell texts of dataset items. */
export function tableOf(items: unknown[]): { columns: string[]; rows: string[][] } {
  const columns: string[] = [];
  const objects = items.map(item =>
    item !== null && typeof item === 'object' && !Array.isArray(item)
      ? (item as Record<string, unknown>)
      : { value: item }
  );
  for (const object of objects) {
    for (const key of Object.keys(object)) {
      if (!columns.includes(key)) {
        columns.push(key);
      }
    }
  }
  const rows = objects.map(object => columns.map(key => cellText(object[key])));
  return { columns, rows };
}

export function cellText(value: unknown): string {
  if (value === undefined || value === null) {
    return '';
  }
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/** A record's body for display: JSON pretty-printed, text as it is. */
export function prettyBody(text: string, contentType: string | null): string {
  if ((contentType ?? '').includes('json') || /^\s*[[{"]/.test(text)) {
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      return text;
    }
  }
  return text;
}
