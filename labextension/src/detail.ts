/** A run's detail view: settings, input, the live log, OUTPUT, dataset rows, storage links, controls. */
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { apiUrl, deletePath, followLog, getData, getRecord, getRecordBlob, postBody, postData } from './api';
import { statusBadge } from './badge';
import { append, fill, h } from './dom';
import {
  formatDuration, formatMemory, formatStarted, formatTimeout, prettyBody, runDuration
} from './format';
import { LogTail } from './log';
import { RunsModel } from './model';
import { UsagePlotView } from './plot';
import { actorLabel, isTerminal } from './runs';
import { watchStartedRun } from './notify';
import { rerunPath } from './starting';
import { DatasetTable, KvsBrowser, PAGE_ROWS } from './storages';
import { Run } from './types';

/** Lines of log kept in the page; the whole log is a link away. */
export const LOG_LINES = 2000;
const RECORD_CHARS = 100_000;
/** The plot reloads every few seconds while the run runs (the server samples every few seconds). */
const USAGE_EVERY_TICKS = 3;

export class RunDetail extends Widget {
  private run: Run | undefined;
  private header = h('div', { class: 'jp-ActorsRun-header' });
  private settings = h('div', { class: 'jp-ActorsRun-settings' });
  private links = h('div', { class: 'jp-ActorsRun-links' });
  private input = h('pre', { class: 'jp-ActorsRun-record jp-ActorsRun-input' }, 'Loading…');
  private logInfo = h('div', { class: 'jp-ActorsRun-logInfo' });
  private logView = h('pre', { class: 'jp-ActorsRun-log' });
  private output = h('div', { class: 'jp-ActorsRun-output' }, 'Loading…');
  private datasetTable: DatasetTable | undefined;
  private store: KvsBrowser | undefined;
  private items = h('div', { class: 'jp-ActorsRun-dataset' }, 'Loading…');
  private records = h('div', { class: 'jp-ActorsRun-store' }, 'Loading…');
  private log = new LogTail(LOG_LINES);
  private usage: UsagePlotView;
  private logController: AbortController | undefined;
  private ticker: number;
  private ticks = 0;

  constructor(
    private model: RunsModel,
    readonly runId: string,
    /** Opens another run's view (a rerun's). */
    private openRun: (runId: string) => void = () => undefined
  ) {
    super();
    this.addClass('jp-ActorsRun');
    this.title.label = `Run ${runId}`;
    this.title.closable = true;
    this.usage = new UsagePlotView(runId);
    fill(
      this.node,
      this.header,
      section('Settings', this.settings),
      section('Storages', this.links),
      section('Memory and CPU', this.usage.node),
      section('Input', this.input),
      section('Log', this.logInfo, this.logView),
      section('OUTPUT', this.output),
      section(`Dataset (${PAGE_ROWS} items a page)`, this.items),
      section('Key-value store', this.records)
    );
    model.changed.connect(this.onModelChanged, this);
    this.ticker = window.setInterval(() => {
      if (this.isVisible && this.run && !isTerminal(this.run.status)) {
        this.renderSettings();
        if (++this.ticks % USAGE_EVERY_TICKS === 0) {
          void this.usage.refresh();
        }
      }
    }, 1000);
    void this.load();
  }

  dispose(): void {
    this.logController?.abort();
    window.clearInterval(this.ticker);
    this.model.changed.disconnect(this.onModelChanged, this);
    this.store?.dispose();
    super.dispose();
  }

  private async load(): Promise<void> {
    try {
      this.setRun(this.model.get(this.runId) ?? (await getData<Run>(`v2/actor-runs/${this.runId}`)));
    } catch (error) {
      fill(this.header, h('div', { class: 'jp-ActorsRun-error' }, `Cannot load the run: ${error}`));
      return;
    }
    this.followLog();
    void this.usage.refresh();
    void this.loadInput();
    void this.loadResults();
  }

  private onModelChanged(): void {
    const fresh = this.model.get(this.runId);
    if (!fresh || !this.run || fresh === this.run) {
      return;
    }
    const wasTerminal = isTerminal(this.run.status);
    this.setRun(fresh);
    if (!wasTerminal && isTerminal(fresh.status)) {
      void this.loadResults();
      void this.usage.refresh();
    } else if (wasTerminal && !isTerminal(fresh.status)) {
      this.followLog(); // resurrected: the log goes on
    }
  }

  private setRun(run: Run): void {
    this.run = run;
    this.title.label = `${actorLabel(run)} run`;
    this.title.caption = `Run ${run.id} of ${actorLabel(run)}: ${run.status}`;
    this.renderHeader();
    this.renderSettings();
    this.renderLinks();
  }

  private renderHeader(): void {
    const run = this.run!;
    const terminal = isTerminal(run.status);
    const abort = h('button', { class: 'jp-Button jp-mod-styled jp-mod-warn jp-ActorsRun-abort' }, 'Abort');
    abort.addEventListener('click', () => void this.abort());
    const resurrect = h('button', { class: 'jp-Button jp-mod-styled jp-mod-accept jp-ActorsRun-resurrect' }, 'Resurrect');
    resurrect.addEventListener('click', () => void this.resurrect());
    const rerun = h('button', { class: 'jp-Button jp-mod-styled jp-ActorsRun-rerun', title: 'A new run with the same input and options' }, 'Rerun');
    rerun.addEventListener('click', () => void this.rerun());
    const remove = h('button', { class: 'jp-Button jp-mod-styled jp-mod-warn jp-ActorsRun-delete', title: 'Delete the run with its storages and log' }, 'Delete');
    remove.addEventListener('click', () => void this.delete());
    fill(
      this.header,
      h('h2', {}, actorLabel(run), h('span', { class: 'jp-ActorsRun-id' }, run.id)),
      h('div', { class: 'jp-ActorsRun-status' }, statusBadge(run.status), h('span', {}, run.statusMessage ?? '')),
      h('div', { class: 'jp-ActorsRun-actions' }, terminal ? resurrect : abort, rerun, terminal && remove)
    );
  }

  private renderSettings(): void {
    const run = this.run!;
    const rows: [string, string][] = [
      ['Run ID', run.id],
      ['Actor', `${actorLabel(run)} (${run.actId})`],
      ['Build', `${run.options.build}${run.buildNumber ? ` (${run.buildNumber})` : ''}`],
      ['Memory', formatMemory(run.options.memoryMbytes)],
      ['Timeout', formatTimeout(run.options.timeoutSecs)],
      ['Started', formatStarted(run.startedAt)],
      ['Finished', formatStarted(run.finishedAt)],
      ['Duration', formatDuration(runDuration(run))],
      ['Exit code', run.exitCode === null ? '' : String(run.exitCode)]
    ];
    fill(
      this.settings,
      h('table', { class: 'jp-ActorsRun-table' }, ...rows.map(([name, value]) => h('tr', {}, h('th', {}, name), h('td', {}, value))))
    );
  }

  private renderLinks(): void {
    const run = this.run!;
    const link = (label: string, path: string) =>
      h('a', { href: apiUrl(path), target: '_blank', rel: 'noopener' }, label);
    fill(
      this.links,
      link('Key-value store', `v2/key-value-stores/${run.defaultKeyValueStoreId}/keys`),
      link('Dataset items', `v2/datasets/${run.defaultDatasetId}/items?format=json`),
      run.defaultRequestQueueId && link('Request queue', `v2/request-queues/${run.defaultRequestQueueId}`),
      link('Run (JSON)', `v2/actor-runs/${run.id}`),
      link('Full log', `v2/actor-runs/${run.id}/log`),
      // Only a live container can serve; the link answers 502 if the actor serves nothing.
      run.containerUrl &&
        !isTerminal(run.status) &&
        h('a', { href: run.containerUrl, target: '_blank', rel: 'noopener', title: 'If the actor serves one' }, 'Web server')
    );
  }

  private followLog(): void {
    this.logController?.abort();
    const controller = (this.logController = new AbortController());
    this.log = new LogTail(LOG_LINES);
    this.renderLog();
    followLog(
      this.runId,
      text => {
        this.log.append(text);
        this.renderLog();
      },
      controller.signal
    ).catch(error => {
      if (!controller.signal.aborted) {
        append(this.logInfo, h('span', { class: 'jp-ActorsRun-error' }, ` Following the log failed: ${error}`));
      }
    });
  }

  private renderLog(): void {
    const view = this.logView;
    const atBottom = view.scrollHeight - view.scrollTop - view.clientHeight < 20;
    view.textContent = this.log.text;
    if (atBottom) {
      view.scrollTop = view.scrollHeight;
    }
    const download = h('a', { href: apiUrl(`v2/actor-runs/${this.runId}/log`), download: `run-${this.runId}.log` }, 'download the full log');
    fill(
      this.logInfo,
      this.log.dropped
        ? `Showing the last ${LOG_LINES} lines (${this.log.dropped} earlier ones are not shown): `
        : `${this.log.lineCount} ${this.log.lineCount === 1 ? 'line' : 'lines'}: `,
      download
    );
  }

  private async loadInput(): Promise<void> {
    await showRecord(this.input, this.run!.defaultKeyValueStoreId, 'INPUT', 'No input.');
  }

  private async loadResults(): Promise<void> {
    const run = this.run!;
    const output = h('pre', { class: 'jp-ActorsRun-record' });
    fill(this.output, output);
    const yet = isTerminal(run.status) ? '' : ' yet';
    const outputDone = showRecord(output, run.defaultKeyValueStoreId, 'OUTPUT', `No OUTPUT record${yet}.`);
    this.datasetTable ??= new DatasetTable(run.defaultDatasetId);
    this.store ??= new KvsBrowser(run.defaultKeyValueStoreId);
    fill(this.items, this.datasetTable.node);
    fill(this.records, this.store.node);
    await Promise.all([this.datasetTable.load(isTerminal(run.status)), this.store.load()]);
    await outputDone;
  }

  private async abort(): Promise<void> {
    const run = this.run!;
    const answer = await showDialog({
      title: 'Abort the run?',
      body: `The run ${run.id} of ${actorLabel(run)} gets SIGTERM, then SIGKILL after the grace period. Its storages stay.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Abort run' })]
    });
    if (answer.button.accept) {
      await this.control(`v2/actor-runs/${run.id}/abort?gracefully=true`, 'Abort failed');
    }
  }

  private async resurrect(): Promise<void> {
    const run = this.run!;
    const answer = await showDialog({
      title: 'Resurrect the run?',
      body: `The run ${run.id} of ${actorLabel(run)} starts again with the same storages and settings.`,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Resurrect run' })]
    });
    if (answer.button.accept) {
      await this.control(`v2/actor-runs/${run.id}/resurrect`, 'Resurrect failed');
    }
  }

  private async rerun(): Promise<void> {
    const run = this.run!;
    try {
      const input = await getRecordBlob(run.defaultKeyValueStoreId, 'INPUT');
      const started = await postBody<Run>(rerunPath(run), input, input?.type || null);
      watchStartedRun(started.id); // a notification when it ends
      this.openRun(started.id);
    } catch (error) {
      await showErrorMessage('Rerun failed', String(error));
    }
  }

  private async delete(): Promise<void> {
    const run = this.run!;
    const answer = await showDialog({
      title: 'Delete the run?',
      body: `The run ${run.id} of ${actorLabel(run)} is deleted with its default dataset, key-value store, request queue and log. This cannot be undone.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete run' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await deletePath(`v2/actor-runs/${run.id}`);
    } catch (error) {
      await showErrorMessage('Delete failed', String(error));
      return;
    }
    this.model.remove(run.id);
    (this.parent ?? this).dispose(); // the tab (a MainAreaWidget around this view) closes
  }

  private async control(path: string, failure: string): Promise<void> {
    // The new status arrives through the runs stream, in order with the run's other changes.
    try {
      await postData<Run>(path);
    } catch (error) {
      await showErrorMessage(failure, String(error));
    }
  }
}

function section(title: string, ...content: HTMLElement[]): HTMLElement {
  return h('section', { class: 'jp-ActorsRun-section' }, h('h3', {}, title), ...content);
}

async function showRecord(target: HTMLElement, storeId: string, key: string, missing: string): Promise<void> {
  try {
    const record = await getRecord(storeId, key);
    if (!record) {
      target.textContent = missing;
      target.classList.add('jp-ActorsRun-missing');
      return;
    }
    target.classList.remove('jp-ActorsRun-missing');
    if (!isTextual(record.contentType)) {
      target.textContent = `${key} is ${record.contentType}: open it from the key-value store.`;
      return;
    }
    const text = prettyBody(record.text, record.contentType);
    target.textContent = text.length > RECORD_CHARS ? `${text.slice(0, RECORD_CHARS)}\n… (cut; open the store for all of it)` : text;
  } catch (error) {
    target.textContent = `Cannot load ${key}: ${error}`;
  }
}

function isTextual(contentType: string | null): boolean {
  return !contentType || /^text\/|json|xml|javascript|csv/.test(contentType);
}
