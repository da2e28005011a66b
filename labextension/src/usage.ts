/**
 * Pure logic of a run's memory and CPU: the samples of GET /v2/actor-runs/{id}/stats-samples scaled into
 * plot coordinates (memory against the run's limit, CPU against its cores), and the peak-memory line.
 */

export const MB = 2 ** 20;

/** One sample of the API's stats-samples answer: memory in bytes, CPU in percent of one core. */
export interface UsageSample {
  at: string;
  memBytes: number;
  cpuUsage: number;
}

/** The API's stats-samples answer (`data`). */
export interface UsageSamples {
  runId?: string;
  memoryLimitBytes: number;
  cpuCores: number;
  intervalSecs?: number;
  count?: number;
  items: UsageSample[];
}

/** A box to draw in and the inner margins of its plot area. */
export interface PlotBox {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

/** What a plot draws: polyline points in the box, the scales' tops and a summary for labels. */
export interface PlotGeometry {
  memoryPoints: string;
  cpuPoints: string;
  /** The y of the memory limit line (the top of the memory scale when the limit is known). */
  limitY: number;
  memoryTopBytes: number;
  cpuTopPct: number;
  memMaxBytes: number;
  memLastBytes: number;
  cpuMaxPct: number;
  spanSecs: number;
  count: number;
}

/** At most `max` samples, evenly strided, always keeping the newest (the current value). */
export function thin<T>(items: T[], max: number): T[] {
  if (items.length <= max || max < 2) {
    return items.slice();
  }
  const stride = (items.length - 1) / (max - 1);
  return Array.from({ length: max }, (_, i) => items[Math.round(i * stride)]);
}

/**
 * `values` as "x,y x,y" over the box's plot area with `top` at its top edge (values above it are clipped);
 * `xs` (0..1 each) places the points in time, else they are evenly spaced.
 */
export function polylinePoints(values: number[], top: number, box: PlotBox, xs?: number[]): string {
  const inner = innerSize(box);
  const scale = top > 0 ? top : 1;
  const last = Math.max(1, values.length - 1);
  return values
    .map((value, i) => {
      const x = box.left + (xs ? xs[i] : i / last) * inner.width;
      const y = box.top + inner.height - (Math.min(Math.max(value, 0), scale) / scale) * inner.height;
      return `${round1(x)},${round1(y)}`;
    })
    .join(' ');
}

/** Memory against the limit (or its own peak when no limit is known), CPU against the cores' share. */
export function plotGeometry(samples: UsageSamples, box: PlotBox, maxPoints = 300): PlotGeometry {
  const items = thin(samples.items, maxPoints);
  const memory = items.map(item => item.memBytes);
  const cpu = items.map(item => item.cpuUsage);
  const memMaxBytes = Math.max(0, ...samples.items.map(item => item.memBytes));
  const cpuMaxPct = Math.max(0, ...samples.items.map(item => item.cpuUsage));
  const memoryTopBytes = samples.memoryLimitBytes > 0 ? Math.max(samples.memoryLimitBytes, memMaxBytes) : memMaxBytes || 1;
  const cpuTopPct = Math.max((samples.cpuCores || 0) * 100, cpuMaxPct) || 100;
  const times = items.map(item => Date.parse(item.at));
  const first = times[0];
  const span = times.length > 1 ? times[times.length - 1] - first : 0;
  const xs = span > 0 && times.every(t => !isNaN(t)) ? times.map(t => (t - first) / span) : undefined;
  const inner = innerSize(box);
  const limitY =
    samples.memoryLimitBytes > 0
      ? box.top + inner.height - (Math.min(samples.memoryLimitBytes, memoryTopBytes) / memoryTopBytes) * inner.height
      : box.top;
  return {
    memoryPoints: polylinePoints(memory, memoryTopBytes, box, xs),
    cpuPoints: polylinePoints(cpu, cpuTopPct, box, xs),
    limitY: round1(limitY),
    memoryTopBytes,
    cpuTopPct,
    memMaxBytes,
    memLastBytes: samples.items.length ? samples.items[samples.items.length - 1].memBytes : 0,
    cpuMaxPct,
    spanSecs: Math.round(span / 1000),
    count: samples.items.length
  };
}

/**
 * The live view's saved sparkline (`spark` of the run bundle: memory in MB, CPU in percent of a core)
 * as samples, so a saved notebook draws it with the same plot before the server answers.
 */
export function samplesFromSpark(
  spark: { memMb?: number[]; cpuPct?: number[] } | undefined,
  memoryLimitMb: number | null | undefined
): UsageSamples {
  const memory = spark?.memMb ?? [];
  const cpu = spark?.cpuPct ?? [];
  return {
    memoryLimitBytes: (memoryLimitMb ?? 0) * MB,
    cpuCores: 0,
    items: memory.map((mb, i) => ({ at: '', memBytes: mb * MB, cpuUsage: cpu[i] ?? 0 }))
  };
}

/** The memory limits a run can have (128 MB .. 32 GB, powers of two), as the server allows. */
export const ALLOWED_MEMORY_MB = Array.from({ length: 9 }, (_, i) => 2 ** (i + 7));
const LOW_SHARE = 0.25;
const HIGH_SHARE = 0.9;
const HEADROOM = 2.0;

/**
 * "peak 312 MB of 1024 MB", with advice on the limit after a dash: the same rule and words as the
 * notebook's live view (jupyter_actors/notebook/sizing.py), for a run that ends while Lab watches it.
 */
export function peakLine(peakBytes: number | null | undefined, limitMb: number, oomKilled = false): string {
  const peak = peakBytes ? `peak ${Math.round(peakBytes / MB)} MB of ${limitMb} MB` : `peak not measured, limit ${limitMb} MB`;
  const hint = memoryHint(peakBytes, limitMb, oomKilled);
  return hint ? `${peak} - ${hint}` : peak;
}

export function memoryHint(peakBytes: number | null | undefined, limitMb: number, oomKilled = false): string {
  const larger = (): string => {
    const bigger = ALLOWED_MEMORY_MB.find(mb => mb > limitMb);
    return bigger === undefined ? '' : ` (--memory ${bigger})`;
  };
  if (oomKilled) {
    return `it ran out of memory: raise the memory${larger()}`;
  }
  if (!peakBytes || limitMb <= 0) {
    return '';
  }
  const share = peakBytes / (limitMb * MB);
  if (share > HIGH_SHARE) {
    return `close to the limit: raise the memory${larger()}`;
  }
  if (share < LOW_SHARE) {
    const smaller = ALLOWED_MEMORY_MB.find(mb => mb * MB >= HEADROOM * peakBytes) ?? limitMb;
    if (smaller < limitMb) {
      return `a ${smaller} MB limit would do`;
    }
  }
  return '';
}

function innerSize(box: PlotBox): { width: number; height: number } {
  return {
    width: Math.max(1, box.width - box.left - box.right),
    height: Math.max(1, box.height - box.top - box.bottom)
  };
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}
