// Colour and cursor sequences (ESC [ ... letter) that loggers write for terminals.
// eslint-disable-next-line no-control-regex
const ANSI_SEQUENCE = /\x1b\[[0-9;?]*[A-Za-z]/g;

/** The text without terminal escape sequences. */
export function stripAnsi(text: string): string {
  return text.replace(ANSI_SEQUENCE, '');
}

/** The tail of a log that keeps growing: at most `maxLines` complete lines plus a partial one. */
export class LogTail {
  private lines: string[] = [];
  private partial = '';
  /** How many lines were dropped from the start to stay within the bound. */
  dropped = 0;

  constructor(readonly maxLines: number) {}

  append(text: string): void {
    const parts = stripAnsi(this.partial + text).split('\n');
    this.partial = parts.pop() ?? '';
    this.lines.push(...parts);
    const excess = this.lines.length - this.maxLines;
    if (excess > 0) {
      this.lines.splice(0, excess);
      this.dropped += excess;
    }
  }

  get text(): string {
    const body = this.lines.join('\n');
    return this.partial ? (body ? `${body}\n${this.partial}` : this.partial) : body;
  }

  get lineCount(): number {
    return this.lines.length + (this.partial ? 1 : 0);
  }
}
