/** The left-sidebar "Actors" panel: the runs, newest first, live, with filters by status and actor. */
import { Widget } from '@lumino/widgets';

import { statusBadge } from './badge';
import { fill, h } from './dom';
import { formatDuration, formatMemory, formatStarted, formatTimeout, runDuration } from './format';
import { RunsModel } from './model';
import { actorLabel, actorNames, ALL_STATUSES, filterRuns, isTerminal, RunFilter } from './runs';
import { DEFAULT_SORT, nextSort, RunSort, SortColumn, sortBy } from './sorting';
import { Run } from './types';

const COLUMNS: [SortColumn, string][] = [
  ['actor', 'Actor'], ['status', 'Status'], ['started', 'Started'], ['duration', 'Duration'], ['memory', 'Memory'], ['timeout', 'Timeout']
];
const STATE_LABELS = { connecting: 'connecting…', live: 'live', polling: 'polling (stream down)' };

export class RunsPanel extends Widget {
  private filter: RunFilter = { status: '', actor: '' };
  private sort: RunSort = DEFAULT_SORT;
  private headers: HTMLTableCellElement[] = [];
  private statusSelect = h('select', { class: 'jp-ActorsPanel-status', 'aria-label': 'Filter by status' });
  private actorSelect = h('select', { class: 'jp-ActorsPanel-actor', 'aria-label': 'Filter by actor' });
  private stateLabel = h('span', { class: 'jp-ActorsPanel-state' });
  private body = h('tbody');
  private rows = new Map<string, HTMLTableRowElement>();
  private empty = h('div', { class: 'jp-ActorsPanel-empty' });
  private ticker: number;

  constructor(
    private model: RunsModel,
    private openRun: (runId: string) => void,
    startRun?: () => void
  ) {
    super();
    this.addClass('jp-ActorsPanel');
    fill(
      this.statusSelect,
      h('option', { value: '' }, 'All statuses'),
      h('option', { value: 'active' }, 'Not finished'),
      ...ALL_STATUSES.map(status => h('option', { value: status }, status))
    );
    this.statusSelect.addEventListener('change', () => {
      this.filter.status = this.statusSelect.value;
      this.render();
    });
    this.actorSelect.addEventListener('change', () => {
      this.filter.actor = this.actorSelect.value;
      this.render();
    });
    // A click on a header sorts by its column; a second click reverses.
    this.headers = COLUMNS.map(([column, title]) => {
      const th = h('th', { class: 'jp-ActorsTable-sortable', 'data-column': column, tabindex: '0', title: `Sort by ${title.toLowerCase()}` }, title);
      const sortByThis = () => {
        this.sort = nextSort(this.sort, column);
        this.render();
      };
      th.addEventListener('click', sortByThis);
      th.addEventListener('keydown', event => event.key === 'Enter' && sortByThis());
      return th;
    });
    const head = h('tr', {}, ...this.headers);
    const start = h('button', { class: 'jp-Button jp-mod-styled jp-mod-accept jp-ActorsPanel-start', title: 'Start a run from a form' }, 'Start run');
    start.addEventListener('click', () => startRun?.());
    fill(
      this.node,
      h('div', { class: 'jp-ActorsPanel-header' }, h('h2', {}, 'Actor runs'), h('div', { class: 'jp-ActorsPanel-tools' }, this.stateLabel, startRun && start)),
      h('div', { class: 'jp-ActorsPanel-filters' }, this.statusSelect, this.actorSelect),
      h('div', { class: 'jp-ActorsPanel-scroll' }, h('table', { class: 'jp-ActorsTable' }, h('thead', {}, head), this.body)),
      this.empty
    );
    model.changed.connect(this.render, this);
    // Durations of unfinished runs keep counting.
    this.ticker = window.setInterval(() => {
      if (this.isVisible && this.model.runs.some(run => !isTerminal(run.status))) {
        this.render();
      }
    }, 1000);
    this.render();
  }

  dispose(): void {
    window.clearInterval(this.ticker);
    this.model.changed.disconnect(this.render, this);
    super.dispose();
  }

  render(): void {
    const runs = this.model.runs;
    this.stateLabel.textContent = STATE_LABELS[this.model.state];
    this.stateLabel.dataset.state = this.model.state;
    this.renderActorOptions(actorNames(runs));
    const now = new Date();
    const shown = sortBy(filterRuns(runs, this.filter), this.sort, now);
    for (const th of this.headers) {
      const sorted = th.dataset.column === this.sort.column;
      th.setAttribute('aria-sort', sorted ? (this.sort.descending ? 'descending' : 'ascending') : 'none');
    }
    // Rows are kept per run and updated in place, so focus and hover survive live updates.
    const shownIds = new Set(shown.map(run => run.id));
    for (const [id, row] of this.rows) {
      if (!shownIds.has(id)) {
        row.remove();
        this.rows.delete(id);
      }
    }
    shown.forEach((run, index) => {
      const row = this.rows.get(run.id) ?? this.createRow(run.id);
      this.updateRow(row, run, now);
      if (this.body.children[index] !== row) {
        this.body.insertBefore(row, this.body.children[index] ?? null);
      }
    });
    this.empty.textContent = runs.length
      ? shown.length
        ? ''
        : 'No runs match the filter.'
      : 'No runs yet. Start one with %%actor in a notebook.';
  }

  private renderActorOptions(names: string[]): void {
    const wanted = ['', ...names];
    const current = [...this.actorSelect.options].map(option => option.value);
    if (JSON.stringify(wanted) === JSON.stringify(current)) {
      return;
    }
    fill(
      this.actorSelect,
      ...wanted.map(name => h('option', { value: name }, name || 'All actors'))
    );
    this.actorSelect.value = this.filter.actor;
  }

  private createRow(runId: string): HTMLTableRowElement {
    const row = h(
      'tr',
      { class: 'jp-ActorsTable-row', tabindex: '0', 'data-run-id': runId },
      h('td', { class: 'jp-ActorsTable-actor' }),
      h('td', {}),
      h('td', {}),
      h('td', { class: 'jp-ActorsTable-num' }),
      h('td', { class: 'jp-ActorsTable-num' }),
      h('td', { class: 'jp-ActorsTable-num' })
    );
    row.addEventListener('click', () => this.openRun(runId));
    row.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        this.openRun(runId);
      }
    });
    this.rows.set(runId, row);
    return row;
  }

  private updateRow(row: HTMLTableRowElement, run: Run, now: Date): void {
    const [actor, status, started, duration, memory, timeout] = [...row.cells];
    row.title = run.statusMessage ?? '';
    row.dataset.status = run.status;
    actor.textContent = actorLabel(run);
    if (status.firstElementChild?.getAttribute('data-status') !== run.status) {
      fill(status, statusBadge(run.status));
    }
    started.textContent = formatStarted(run.startedAt, now);
    duration.textContent = formatDuration(runDuration(run, now));
    memory.textContent = formatMemory(run.options?.memoryMbytes);
    timeout.textContent = formatTimeout(run.options?.timeoutSecs);
  }
}
