/** The runs shown by the panel and the detail views, kept up to date by one RunsStream. */
import { ISignal, Signal } from '@lumino/signaling';

import { RunsStream, StreamState } from './api';
import { applyEvent } from './runs';
import { Run } from './types';

export class RunsModel {
  runs: Run[] = [];
  state: StreamState = 'connecting';
  private _changed = new Signal<this, void>(this);
  private stream = new RunsStream(
    event => {
      this.runs = applyEvent(this.runs, event);
      this._changed.emit();
    },
    state => {
      this.state = state;
      this._changed.emit();
    }
  );

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  start(): void {
    this.stream.start();
  }

  get(runId: string): Run | undefined {
    return this.runs.find(run => run.id === runId);
  }

  /** Drops a run deleted from this browser (the stream has no deletion event; other browsers see it gone on their next snapshot). */
  remove(runId: string): void {
    this.runs = this.runs.filter(run => run.id !== runId);
    this._changed.emit();
  }

  dispose(): void {
    this.stream.dispose();
    Signal.clearData(this);
  }
}
