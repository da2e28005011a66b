/**
 * A run's memory and CPU as an inline SVG (no plotting library): memory against the run's limit, CPU
 * against its cores. Shared by the run renderer (a sparkline) and the detail view (a plot with axes).
 * Colours come from CSS classes (style/plot.css) that use only JupyterLab's theme variables.
 */
import { getData } from './api';
import { h } from './dom';
import { MB, PlotBox, plotGeometry, UsageSamples } from './usage';

const SVG = 'http://www.w3.org/2000/svg';
const SPARK_BOX: PlotBox = { width: 120, height: 24, left: 1, right: 1, top: 2, bottom: 2 };
const PLOT_BOX: PlotBox = { width: 560, height: 170, left: 64, right: 48, top: 12, bottom: 22 };

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>,
  text?: string
): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    element.setAttribute(name, String(value));
  }
  if (text !== undefined) {
    element.textContent = text;
  }
  return element;
}

const mb = (bytes: number): string => `${Math.round(bytes / MB)} MB`;
const pct = (value: number): string => `${Math.round(value)}%`;

/** A small sparkline (memory and CPU lines), or null while there are fewer than two samples. */
export function sparkline(samples: UsageSamples): SVGSVGElement | null {
  if (samples.items.length < 2) {
    return null;
  }
  const box = SPARK_BOX;
  const g = plotGeometry(samples, box, 60);
  const root = svg('svg', {
    class: 'jp-ActorsPlot jp-ActorsPlot-spark', width: box.width, height: box.height,
    viewBox: `0 0 ${box.width} ${box.height}`, role: 'img'
  });
  const limit = samples.memoryLimitBytes ? ` of ${mb(samples.memoryLimitBytes)}` : '';
  root.append(
    svg('title', {}, `memory (max ${mb(g.memMaxBytes)}${limit}) and CPU (max ${pct(g.cpuMaxPct)} of one core), ${g.count} samples`),
    svg('rect', { class: 'jp-ActorsPlot-frame', x: 0.5, y: 0.5, width: box.width - 1, height: box.height - 1 }),
    svg('polyline', { class: 'jp-ActorsPlot-cpu', points: g.cpuPoints }),
    svg('polyline', { class: 'jp-ActorsPlot-memory', points: g.memoryPoints })
  );
  return root;
}

/** The plot with axes, the limit line and a legend; a note instead while there is nothing to draw. */
export function usagePlot(samples: UsageSamples): HTMLElement {
  if (samples.items.length < 2) {
    return h('div', { class: 'jp-ActorsPlot-empty' }, 'No memory and CPU samples yet (the server takes one every few seconds while the run runs).');
  }
  const box = PLOT_BOX;
  const g = plotGeometry(samples, box);
  const right = box.width - box.right;
  const bottom = box.height - box.bottom;
  const root = svg('svg', {
    class: 'jp-ActorsPlot jp-ActorsPlot-full', width: box.width, height: box.height,
    viewBox: `0 0 ${box.width} ${box.height}`, role: 'img'
  });
  const middle = (box.top + bottom) / 2;
  root.append(
    svg('title', {}, `Memory and CPU of run ${samples.runId ?? ''}, ${g.count} samples`),
    svg('rect', { class: 'jp-ActorsPlot-frame', x: box.left, y: box.top, width: right - box.left, height: bottom - box.top }),
    svg('line', { class: 'jp-ActorsPlot-grid', x1: box.left, x2: right, y1: middle, y2: middle }),
    svg('text', { class: 'jp-ActorsPlot-axis', x: box.left - 4, y: box.top + 4, 'text-anchor': 'end' }, mb(g.memoryTopBytes)),
    svg('text', { class: 'jp-ActorsPlot-axis', x: box.left - 4, y: middle + 4, 'text-anchor': 'end' }, mb(g.memoryTopBytes / 2)),
    svg('text', { class: 'jp-ActorsPlot-axis', x: box.left - 4, y: bottom, 'text-anchor': 'end' }, '0'),
    svg('text', { class: 'jp-ActorsPlot-axis', x: right + 4, y: box.top + 4 }, pct(g.cpuTopPct)),
    svg('text', { class: 'jp-ActorsPlot-axis', x: right + 4, y: bottom }, '0%'),
    svg('text', { class: 'jp-ActorsPlot-axis', x: box.left, y: box.height - 6 }, '0 s'),
    svg('text', { class: 'jp-ActorsPlot-axis', x: right, y: box.height - 6, 'text-anchor': 'end' }, `${g.spanSecs} s`),
    svg('polyline', { class: 'jp-ActorsPlot-cpu', points: g.cpuPoints }),
    svg('polyline', { class: 'jp-ActorsPlot-memory', points: g.memoryPoints })
  );
  if (samples.memoryLimitBytes > 0) {
    root.append(
      svg('line', { class: 'jp-ActorsPlot-limit', x1: box.left, x2: right, y1: g.limitY, y2: g.limitY }),
      svg('text', { class: 'jp-ActorsPlot-limitLabel', x: right - 4, y: g.limitY + 12, 'text-anchor': 'end' }, `limit ${mb(samples.memoryLimitBytes)}`)
    );
  }
  const limit = samples.memoryLimitBytes ? ` of ${mb(samples.memoryLimitBytes)}` : '';
  const cores = samples.cpuCores ? ` (${samples.cpuCores} ${samples.cpuCores === 1 ? 'core' : 'cores'} = ${pct(samples.cpuCores * 100)})` : '';
  return h(
    'div',
    { class: 'jp-ActorsPlot-box' },
    root,
    h(
      'div',
      { class: 'jp-ActorsPlot-legend' },
      h('span', { class: 'jp-ActorsPlot-key jp-ActorsPlot-key-memory' }, `memory: peak ${mb(g.memMaxBytes)}${limit}, last ${mb(g.memLastBytes)}`),
      h('span', { class: 'jp-ActorsPlot-key jp-ActorsPlot-key-cpu' }, `CPU: max ${pct(g.cpuMaxPct)} of one core${cores}`),
      h('span', { class: 'jp-ActorsPlot-count' }, `${g.count} samples`)
    )
  );
}

/** The run's samples from the API. */
export function loadSamples(runId: string): Promise<UsageSamples> {
  return getData<UsageSamples>(`v2/actor-runs/${runId}/stats-samples`);
}

/** The detail view's plot section: loads the samples on `refresh()` and redraws. */
export class UsagePlotView {
  readonly node = h('div', { class: 'jp-ActorsRun-usage' }, 'Loading…');
  private loading: Promise<void> | null = null;

  constructor(private runId: string) {}

  refresh(): Promise<void> {
    // One request at a time: a tick that comes while one is under way waits for the next.
    this.loading ??= this.load().finally(() => (this.loading = null));
    return this.loading;
  }

  private async load(): Promise<void> {
    try {
      this.node.replaceChildren(usagePlot(await loadSamples(this.runId)));
    } catch (error) {
      this.node.replaceChildren(h('span', { class: 'jp-ActorsRun-error' }, `Cannot load the memory and CPU samples: ${error}`));
    }
  }
}
