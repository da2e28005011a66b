/** A parser of server-sent events (the text/event-stream format) fed with chunks as they arrive. */

export interface SseMessage {
  event: string;
  data: string;
}

export class SseParser {
  private buffer = '';
  private event = '';
  private data: string[] = [];

  /** The messages completed by this chunk; a partial line or message waits for the next chunks. */
  feed(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const messages: SseMessage[] = [];
    let newline: RegExpExecArray | null;
    const lineEnd = /\r\n|\r|\n/g;
    let start = 0;
    while ((newline = lineEnd.exec(this.buffer)) !== null) {
      // A lone \r at the end of the buffer may be the first half of \r\n: wait for more.
      if (newline[0] === '\r' && newline.index === this.buffer.length - 1) {
        break;
      }
      const message = this.line(this.buffer.slice(start, newline.index));
      if (message) {
        messages.push(message);
      }
      start = newline.index + newline[0].length;
    }
    this.buffer = this.buffer.slice(start);
    return messages;
  }

  private line(line: string): SseMessage | null {
    if (line === '') {
      const message = this.data.length
        ? { event: this.event || 'message', data: this.data.join('\n') }
        : null;
      this.event = '';
      this.data = [];
      return message;
    }
    if (line.startsWith(':')) {
      return null; // a comment (keepalive)
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) {
      value = value.slice(1);
    }
    if (field === 'event') {
      this.event = value;
    } else if (field === 'data') {
      this.data.push(value);
    }
    return null;
  }
}
