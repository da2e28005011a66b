/**
 * The renderer of the notebook live view's run bundle (application/vnd.jupyter-actors.run+json): a saved
 * notebook reopened in Lab shows the run live again. It shows the saved state at once, then the run as the
 * server has it, following it (runs stream, log stream, samples) until it ends; an ended run shows its
 * final state and peak memory against the limit.
 */
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { ApiError, apiUrl, followLog, getData, getJson, getRecord } from './api';
import { statusBadge } from './badge';
import { fill, h } from './dom';
import { prettyBody, tableOf } from './format';
import { LogTail } from './log';
import { RunsModel } from './model';
import { loadSamples, sparkline } from './plot';
import { isTerminal } from './runs';
import { applyRun, clockText, elapsedSecs, fromBundle, memoryText, RUN_MIME, RunViewState, shortStamps } from './runview';
import { Run } from './types';
import { samplesFromSpark, UsageSamples } from './usage';

/** Log lines kept in the output (the live view keeps as many); the whole log is a link away. */
export const TAIL_LINES = 200;
const SAMPLES_EVERY_TICKS = 3; // the server samples every few seconds
/** As the notebook's live view: OUTPUT cut at this many characters, the dataset's first rows. */
const OUTPUT_CHARS = 2000;
const DATASET_ROWS = 5;
const SOURCE_TEXT: Record<RunViewState['source'], string> = {
  saved: 'saved state',
  live: 'live',
  missing: 'saved state: this server does not know the run'
};

export class RunRenderer extends Widget implements IRenderMime.IRenderer {
  private state: RunViewState | null = null;
  private samples: UsageSamples | null = null;
  private log = new LogTail(TAIL_LINES);
  private note = '';
  private controller = new AbortController();
  private ticker: number | undefined;
  private ticks = 0;
  private finalLoaded = false;
  private header = h('div', { class: 'jp-ActorsRenderer-header' });
  private meta = h('div', { class: 'jp-ActorsRenderer-meta' });
  private extra = h('div', { class: 'jp-ActorsRenderer-extra' });
  private logView = h('pre', { class: 'jp-ActorsRenderer-log' });
  private results = h('div', { class: 'jp-ActorsRenderer-results' });
  private stickToEnd = true;
  // A theme's fonts or a re-laid-out notebook change the log's size: keep showing its end.
  private resizes = new ResizeObserver(() => this.scrollLogToEnd());

  constructor(
    private model: RunsModel,
    private openRun: (runId: string) => void
  ) {
    super();
    this.addClass('jp-ActorsRenderer');
    fill(this.node, this.header, this.meta, this.extra, this.logView, this.results);
    this.resizes.observe(this.logView);
    // The log sticks to its end unless the reader scrolled up.
    this.logView.addEventListener('scroll', () => {
      const view = this.logView;
      if (!view.clientHeight) {
        return; // not laid out (detached or hidden): no reader scrolled
      }
      this.stickToEnd = view.scrollHeight - view.scrollTop - view.clientHeight < 20;
    });
  }

  async renderModel(mimeModel: IRenderMime.IMimeModel): Promise<void> {
    let saved: RunViewState;
    try {
      saved = fromBundle(mimeModel.data[RUN_MIME]);
    } catch (error) {
      fill(this.node, h('div', { class: 'jp-ActorsRun-error' }, String((error as Error).message)));
      return;
    }
    if (this.state?.id === saved.id) {
      // The kernel's live view updated the output: the server's state, when we have it, is as fresh.
      if (this.state.source === 'saved') {
        this.state = saved;
        this.render();
      }
      return;
    }
    this.stop();
    this.state = saved;
    this.samples = saved.spark.memMb?.length ? samplesFromSpark(saved.spark, saved.memoryMbytes) : null;
    this.render();
    await this.follow(saved.id);
  }

  protected onAfterAttach(): void {
    // A notebook attaches an output when it scrolls into view, after its log may have arrived.
    this.scrollLogToEnd();
  }

  dispose(): void {
    this.resizes.disconnect();
    this.stop();
    super.dispose();
  }

  private stop(): void {
    this.controller.abort();
    this.controller = new AbortController();
    window.clearInterval(this.ticker);
    this.ticker = undefined;
    this.model.changed.disconnect(this.onModelChanged, this);
    this.log = new LogTail(TAIL_LINES);
    this.finalLoaded = false;
    this.note = '';
    this.results.replaceChildren();
  }

  /** The run from the server, then its changes until it ends. */
  private async follow(runId: string): Promise<void> {
    const signal = this.controller.signal;
    let run: Run;
    try {
      run = this.model.get(runId) ?? (await getData<Run>(`v2/actor-runs/${runId}`));
    } catch (error) {
      if (signal.aborted) {
        return;
      }
      if (error instanceof ApiError && error.status === 404) {
        this.state = { ...this.state!, source: 'missing' };
      } else {
        this.note = `Cannot reach the run on the server: ${error}`;
      }
      this.render();
      return;
    }
    if (signal.aborted) {
      return;
    }
    this.setRun(run);
    this.model.changed.connect(this.onModelChanged, this);
    this.ticker = window.setInterval(() => this.tick(), 1000);
    void this.loadSamples();
    followLog(
      runId,
      text => {
        this.log.append(text);
        this.renderLog();
      },
      signal
    ).catch(error => {
      if (!signal.aborted) {
        this.note = `Following the log failed: ${error}`;
        this.render();
      }
    });
  }

  private onModelChanged(): void {
    const fresh = this.state ? this.model.get(this.state.id) : undefined;
    if (fresh && this.state?.source !== 'missing') {
      this.setRun(fresh);
    }
  }

  private setRun(run: Run): void {
    const wasEnded = this.finalLoaded;
    this.state = applyRun(this.state!, run);
    if (isTerminal(run.status) && !wasEnded) {
      // The stream's last event may precede the final stats: read the ended run and its samples once.
      this.finalLoaded = true;
      void this.loadFinal(run);
    } else if (!isTerminal(run.status)) {
      this.finalLoaded = false;
    }
    this.render();
  }

  private async loadFinal(ended: Run): Promise<void> {
    const signal = this.controller.signal;
    let run = ended;
    try {
      run = await getData<Run>(`v2/actor-runs/${ended.id}`);
      if (!signal.aborted) {
        this.state = applyRun(this.state!, run);
        this.render();
      }
    } catch (error) {
      console.warn('jupyter-actors: reading the ended run failed', error);
    }
    await Promise.all([this.loadSamples(), this.loadResults(run)]);
  }

  /** What the live view shows at the end: OUTPUT and the dataset's first rows. */
  private async loadResults(run: Run): Promise<void> {
    const runId = run.id;
    const parts: HTMLElement[] = [];
    try {
      const record = await getRecord(run.defaultKeyValueStoreId, 'OUTPUT');
      if (record) {
        const text = prettyBody(record.text, record.contentType);
        const shown = text.length > OUTPUT_CHARS ? `${text.slice(0, OUTPUT_CHARS)} …` : text;
        parts.push(h('div', { class: 'jp-ActorsRenderer-output' }, h('b', {}, 'OUTPUT'), h('pre', {}, shown)));
      }
      const { body } = await getJson<unknown[]>(`v2/datasets/${run.defaultDatasetId}/items?limit=${DATASET_ROWS}`);
      if (body.length) {
        const { columns, rows } = tableOf(body);
        parts.push(
          h('div', { class: 'jp-ActorsRenderer-dataset' }, h('b', {}, 'Dataset (first rows)'),
            h('div', { class: 'jp-ActorsRun-scroll' }, h('table', { class: 'jp-ActorsRun-items' },
              h('thead', {}, h('tr', {}, ...columns.map(column => h('th', {}, column)))),
              h('tbody', {}, ...rows.map(cells => h('tr', {}, ...cells.map(cell => h('td', {}, cell)))))
            )))
        );
      }
    } catch (error) {
      parts.push(h('div', { class: 'jp-ActorsRenderer-note' }, `Cannot load the results: ${error}`));
    }
    if (this.state?.id === runId) {
      this.results.replaceChildren(...parts);
    }
  }

  private tick(): void {
    if (!this.isVisible || !this.state || isTerminal(this.state.status)) {
      return;
    }
    this.ticks += 1;
    this.renderMeta(); // the clock moves
    if (this.ticks % SAMPLES_EVERY_TICKS === 0) {
      void this.loadSamples();
      if (!this.model.get(this.state.id)) {
        // Not among the stream's runs (an old run): ask the server itself.
        void getData<Run>(`v2/actor-runs/${this.state.id}`).then(run => this.setRun(run), () => undefined);
      }
    }
  }

  private async loadSamples(): Promise<void> {
    const state = this.state;
    if (!state) {
      return;
    }
    try {
      const samples = await loadSamples(state.id);
      if (this.state?.id === state.id && samples.items.length >= 2) {
        this.samples = samples;
        this.renderMeta();
      }
    } catch (error) {
      // A glance, not the record: the view goes on without it.
      console.warn('jupyter-actors: loading the samples failed', error);
    }
  }

  private render(): void {
    const state = this.state!;
    this.node.dataset.runId = state.id;
    this.node.dataset.status = state.status;
    this.node.dataset.source = state.source;
    const open = h('button', { class: 'jp-Button jp-mod-styled jp-mod-minimal jp-ActorsRenderer-open', title: 'Open the run in the Actors panel' }, 'Details');
    open.addEventListener('click', () => this.openRun(state.id));
    fill(
      this.header,
      h('span', {}, 'Run '),
      h('code', { class: 'jp-ActorsRenderer-id' }, state.id),
      statusBadge(state.status),
      h('span', { class: 'jp-ActorsRenderer-message' }, state.statusMessage),
      h('span', { class: `jp-ActorsRenderer-source jp-ActorsRenderer-source-${state.source}` }, SOURCE_TEXT[state.source]),
      state.source !== 'missing' && open
    );
    this.renderMeta();
    fill(
      this.extra,
      state.peak && h('div', { class: 'jp-ActorsRenderer-peak' }, state.peak),
      state.containerUrl &&
        h('div', {}, 'Web server: ', h('a', { href: state.containerUrl, target: '_blank', rel: 'noopener' }, state.containerUrl)),
      this.note && h('div', { class: 'jp-ActorsRenderer-note' }, this.note)
    );
    this.renderLog();
  }

  private renderMeta(): void {
    const state = this.state!;
    const progress = state.timeoutSecs
      ? h('progress', { class: 'jp-ActorsRenderer-progress', max: String(state.timeoutSecs), value: String(Math.min(state.timeoutSecs, Math.round(elapsedSecs(state)))) })
      : null;
    const memory = memoryText(state);
    fill(
      this.meta,
      progress,
      h('span', { class: 'jp-ActorsRenderer-clock' }, clockText(state)),
      memory && h('span', { class: 'jp-ActorsRenderer-memory' }, `memory ${memory}`),
      this.samples && sparkline(this.samples)
    );
  }

  private scrollLogToEnd(): void {
    if (this.stickToEnd) {
      // After layout: a just-filled or just-attached block has no height yet.
      requestAnimationFrame(() => (this.logView.scrollTop = this.logView.scrollHeight));
    }
  }

  private renderLog(): void {
    const view = this.logView;
    view.textContent = shortStamps(this.log.text);
    view.hidden = !this.log.lineCount;
    this.scrollLogToEnd();
    if (this.log.dropped && this.state) {
      view.title = `${this.log.dropped} earlier lines are not shown: ${apiUrl(`v2/actor-runs/${this.state.id}/log`)} has them all`;
    }
  }
}

/** The factory the plugin adds to Lab's rendermime registry. */
export function runRendererFactory(model: RunsModel, openRun: (runId: string) => void): IRenderMime.IRendererFactory {
  return {
    // Safe: the renderer writes text only (no HTML from the bundle), so untrusted notebooks show it too.
    safe: true,
    mimeTypes: [RUN_MIME],
    defaultRank: 10, // before text/html (the live view's fallback)
    createRenderer: () => new RunRenderer(model, openRun)
  };
}
