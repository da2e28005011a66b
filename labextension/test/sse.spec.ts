import { describe, expect, it } from 'vitest';

import { SseParser } from '../src/sse';

describe('SseParser', () => {
  it('parses named events and skips comments', () => {
    const parser = new SseParser();
    const text = 'retry: 2000\n\nevent: snapshot\ndata: {"runs":[]}\n\n: keepalive\n\nevent: run\ndata: {"id":"a"}\n\n';
    expect(parser.feed(text)).toEqual([
      { event: 'snapshot', data: '{"runs":[]}' },
      { event: 'run', data: '{"id":"a"}' }
    ]);
  });

  it('waits for the rest of a message split across chunks, at any byte', () => {
    const text = 'event: run\r\ndata: {"id":"a"}\r\n\r\nevent: run\ndata: {"id":"b"}\n\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const parser = new SseParser();
      const messages = [...parser.feed(text.slice(0, cut)), ...parser.feed(text.slice(cut))];
      expect(messages.map(m => JSON.parse(m.data).id)).toEqual(['a', 'b']);
    }
  });

  it('joins multi-line data and defaults the event name', () => {
    const parser = new SseParser();
    expect(parser.feed('data:one\ndata: two\n\n')).toEqual([{ event: 'message', data: 'one\ntwo' }]);
    expect(parser.feed('event: lonely\n\n')).toEqual([]);
    expect(parser.feed('data: x\n\n')).toEqual([{ event: 'message', data: 'x' }]);
  });
});
