import { describe, expect, it } from 'vitest';

import { LogTail, stripAnsi } from '../src/log';

describe('LogTail', () => {
  it('joins chunks split inside lines', () => {
    const log = new LogTail(10);
    log.append('line 1\nli');
    expect(log.text).toBe('line 1\nli');
    log.append('ne 2\n');
    expect(log.text).toBe('line 1\nline 2');
    expect(log.lineCount).toBe(2);
  });

  it('keeps only the last lines and counts the dropped ones', () => {
    const log = new LogTail(3);
    log.append(Array.from({ length: 10 }, (_, i) => `line ${i}\n`).join(''));
    expect(log.text).toBe('line 7\nline 8\nline 9');
    expect(log.dropped).toBe(7);
    log.append('partial');
    expect(log.text).toBe('line 7\nline 8\nline 9\npartial');
  });
});

describe('stripAnsi', () => {
  it('removes terminal colours, also when a chunk ends inside a line', () => {
    expect(stripAnsi('\x1b[90m[apify]\x1b[0m \x1b[32mINFO\x1b[0m hello')).toBe('[apify] INFO hello');
    const log = new LogTail(10);
    log.append('2026 \x1b[32mINFO\x1b[');
    log.append('0m done\n');
    expect(log.text).toBe('2026 INFO done');
  });
});
