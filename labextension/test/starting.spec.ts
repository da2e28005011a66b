import { describe, expect, it } from 'vitest';

import {
  buildDuration, exportPaths, formatBytes, pageLabel, pageOffsets, parseWhole, previewKind, rerunPath, startPath
} from '../src/starting';
import { makeRun } from './fixtures';

describe('startPath and rerunPath', () => {
  it('puts only the options given into the query', () => {
    expect(startPath('act-1', {})).toBe('v2/acts/act-1/runs');
    expect(startPath('me~x', { memoryMbytes: 1024, timeoutSecs: 0 })).toBe('v2/acts/me~x/runs?memory=1024&timeout=0');
  });
  it('reruns with the same actor, build, memory and timeout', () => {
    const run = makeRun('r1', '2026-01-01T00:00:00Z');
    expect(rerunPath(run)).toBe('v2/acts/act-hello/runs?build=latest&memory=1024&timeout=3600');
  });
});

describe('parseWhole', () => {
  it('reads whole numbers, empty as the default, and refuses the rest with the field named', () => {
    expect(parseWhole(' 512 ', 'Memory', 128)).toBe(512);
    expect(parseWhole('', 'Memory', 128)).toBeUndefined();
    expect(() => parseWhole('1.5', 'Timeout', 0)).toThrow('Timeout must be a whole number of at least 0, not "1.5"');
    expect(() => parseWhole('64', 'Memory', 128)).toThrow('Memory');
  });
});

describe('paging', () => {
  it('labels the page and finds its neighbours', () => {
    expect(pageLabel({ offset: 20, limit: 20, total: 45 }, 20)).toBe('21–40 of 45');
    expect(pageLabel({ offset: 0, limit: 20, total: 0 }, 0)).toBe('No items');
    expect(pageOffsets({ offset: 0, limit: 20, total: 45 })).toEqual({ previous: null, next: 20 });
    expect(pageOffsets({ offset: 40, limit: 20, total: 45 })).toEqual({ previous: 20, next: null });
    expect(pageOffsets({ offset: 5, limit: 20, total: 45 })).toEqual({ previous: 0, next: 25 });
  });
  it('links every export format as a download', () => {
    const paths = exportPaths('ds1').map(link => link.path);
    expect(paths).toContain('v2/datasets/ds1/items?format=csv&attachment=true');
    expect(paths).toContain('v2/datasets/ds1/items?format=xlsx&attachment=true');
    expect(paths).toContain('v2/datasets/ds1/items?format=jsonl&attachment=true');
  });
});

describe('previewKind', () => {
  it('previews raster images, JSON, plain text and HTML (sandboxed) only', () => {
    expect(previewKind('image/png')).toBe('image');
    expect(previewKind('image/svg+xml')).toBe('none');
    expect(previewKind('text/html; charset=utf-8')).toBe('html');
    expect(previewKind('application/xhtml+xml')).toBe('none');
    expect(previewKind('application/json; charset=utf-8')).toBe('json');
    expect(previewKind('text/plain')).toBe('text');
    expect(previewKind(null)).toBe('none');
  });
  it('formats sizes', () => {
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(1536)).toBe('1.5 kB');
    expect(formatBytes(2_500_000)).toBe('2.5 MB');
  });
});

describe('buildDuration', () => {
  const build = { id: 'b', buildNumber: '0.0.1', startedAt: '2026-01-01T00:00:00Z', finishedAt: '2026-01-01T00:00:04Z' };
  it('takes a finished build\'s stats, else its start and end, and counts a running one until now', () => {
    expect(buildDuration({ ...build, status: 'SUCCEEDED', stats: { durationMillis: 3500 } })).toBe(3500);
    expect(buildDuration({ ...build, status: 'SUCCEEDED' })).toBe(4000);
    expect(buildDuration({ ...build, status: 'RUNNING', finishedAt: null }, new Date('2026-01-01T00:00:10Z'))).toBe(10_000);
    expect(buildDuration({ ...build, status: 'READY', startedAt: null })).toBeNull();
  });
});
