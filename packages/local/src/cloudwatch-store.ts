import { type Aggregate, emptyAggregate, mergeAggregate } from "./cloudwatch-statistics";

/**
 * The local CloudWatch's metric data, in memory. As CloudWatch does, it keeps each metric's data per
 * minute (per second for high-resolution data) for 15 days, then per hour for 455 days; every cell
 * keeps its values' counts, so percentiles stay exact across any period.
 */

export interface Dimension {
  Name: string;
  Value: string;
}

/** A metric: CloudWatch tells metrics apart by namespace, name and the full set of dimensions. */
export interface MetricId {
  namespace: string;
  metricName: string;
  dimensions: Dimension[];
}

/** What one PutMetricData datum or one EMF value adds. */
export interface Datum {
  /** Epoch milliseconds. */
  at: number;
  unit: string;
  /** StorageResolution 1: kept per second rather than per minute. */
  highResolution?: boolean;
  aggregate: Aggregate;
}

export interface MetricFilter {
  namespace?: string;
  metricName?: string;
  /** Every one must be among the metric's dimensions; with no Value, any value matches. */
  dimensions?: { Name: string; Value?: string }[];
  /** Only metrics with data at or after this time (epoch ms). */
  activeSince?: number;
}

export interface StoredMetric {
  metric: MetricId;
  lastAt: number;
}

/** One period's data per unit: a metric may have been published in more than one unit. */
export type Buckets = Map<number, Map<string, Aggregate>>;

interface Cell extends Aggregate {
  at: number;
  unit: string;
}

interface Series extends StoredMetric {
  cells: Cell[];
}

/** How a store is written to disk (the platform's data directory) and read back. */
export interface StoreSnapshot {
  version: 1;
  series: {
    metric: MetricId;
    cells: (Omit<Cell, "values"> & { values: [number, number][] | null })[];
  }[];
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** CloudWatch's retention: 1-minute data for 15 days, 1-hour data for 455 days. */
export const FINE_RETENTION_MS = 15 * DAY;
export const HOURLY_RETENTION_MS = 455 * DAY;
/** ListMetrics shows metrics with data in the last two weeks. */
const LISTED_FOR_MS = 14 * DAY;
const PRUNE_EVERY_MS = MINUTE;

export interface MetricStoreOptions {
  now?: () => number;
  /** Bounds memory: past this many cells the oldest go. */
  maxCells?: number;
}

export class MetricStore {
  private readonly series = new Map<string, Series>();
  private readonly now: () => number;
  private readonly maxCells: number;
  private cellCount = 0;
  private prunedAt = 0;
  private rolledBefore = 0;

  constructor(options: MetricStoreOptions = {}) {
    this.now = options.now ?? Date.now;
    this.maxCells = options.maxCells ?? 2_000_000;
  }

  put(metric: MetricId, datum: Datum): void {
    const id = metricKey(metric);
    let series = this.series.get(id);
    if (!series) {
      series = { metric: normalized(metric), cells: [], lastAt: datum.at };
      this.series.set(id, series);
    }
    series.lastAt = Math.max(series.lastAt, datum.at);
    const fine = datum.at >= this.now() - FINE_RETENTION_MS;
    const at = floorTo(datum.at, !fine ? HOUR : datum.highResolution ? SECOND : MINUTE);
    const cell = findOrInsertCell(series.cells, at, datum.unit);
    if (cell.sampleCount === 0) this.cellCount += 1;
    mergeAggregate(cell, datum.aggregate);
    if (this.now() - this.prunedAt >= PRUNE_EVERY_MS) this.prune();
  }

  metrics(filter: MetricFilter = {}): StoredMetric[] {
    const since = Math.max(filter.activeSince ?? 0, this.now() - LISTED_FOR_MS);
    return [...this.series.values()]
      .filter((s) => s.lastAt >= since && matches(s.metric, filter))
      .map((s) => ({ metric: s.metric, lastAt: s.lastAt }));
  }

  /** The metric's data in [start, end), summed per period; periods start at `start`. */
  aggregate(
    metric: MetricId,
    range: { start: number; end: number; periodMs: number; unit?: string },
  ): Buckets {
    const buckets: Buckets = new Map();
    const cells = this.series.get(metricKey(metric))?.cells ?? [];
    for (let i = firstAtOrAfter(cells, range.start); i < cells.length; i++) {
      const cell = cells[i] as Cell;
      if (cell.at >= range.end) break;
      if (range.unit !== undefined && cell.unit !== range.unit) continue;
      const bucket = range.start + floorTo(cell.at - range.start, range.periodMs);
      const units = buckets.get(bucket) ?? new Map<string, Aggregate>();
      buckets.set(bucket, units);
      const into = units.get(cell.unit);
      if (into) mergeAggregate(into, cell);
      else units.set(cell.unit, copy(cell));
    }
    return buckets;
  }

  /** Rolls data older than 15 days up into hours, drops what is older than 455 days, then bounds the total. */
  prune(): void {
    const now = this.now();
    this.prunedAt = now;
    const fineCutoff = now - FINE_RETENTION_MS;
    // Cells before this were rolled up by an earlier pass; only the hour it falls in may still need merging.
    const rollFrom = floorTo(this.rolledBefore, HOUR);
    let count = 0;
    for (const [id, series] of this.series) {
      const cells = series.cells;
      const from = firstAtOrAfter(cells, rollFrom);
      const to = firstAtOrAfter(cells, fineCutoff);
      if (to > from) {
        const hours: Cell[] = [];
        for (const cell of cells.slice(from, to)) {
          mergeAggregate(findOrInsertCell(hours, floorTo(cell.at, HOUR), cell.unit), cell);
        }
        cells.splice(from, to - from, ...hours);
      }
      cells.splice(0, firstAtOrAfter(cells, now - HOURLY_RETENTION_MS));
      if (cells.length === 0) this.series.delete(id);
      count += cells.length;
    }
    this.rolledBefore = fineCutoff;
    this.cellCount = count;
    if (count > this.maxCells) this.dropOldest(count - Math.floor(this.maxCells * 0.9));
  }

  snapshot(): StoreSnapshot {
    return {
      version: 1,
      series: [...this.series.values()].map((s) => ({
        metric: s.metric,
        cells: s.cells.map((c) => ({ ...c, values: c.values ? [...c.values] : null })),
      })),
    };
  }

  restore(snapshot: StoreSnapshot): void {
    for (const { metric, cells } of snapshot.series) {
      const restored = cells.map((c) => ({ ...c, values: c.values ? new Map(c.values) : null }));
      if (restored.length === 0) continue;
      const lastAt = restored.reduce((last, c) => Math.max(last, c.at), 0);
      this.series.set(metricKey(metric), { metric: normalized(metric), cells: restored, lastAt });
    }
    this.rolledBefore = 0;
    this.prune();
  }

  private dropOldest(excess: number): void {
    const times = new Float64Array(this.cellCount);
    let i = 0;
    for (const series of this.series.values()) for (const cell of series.cells) times[i++] = cell.at;
    times.sort();
    const cutoff = times[excess] ?? Number.POSITIVE_INFINITY;
    let count = 0;
    for (const [id, series] of this.series) {
      series.cells = series.cells.filter((cell) => cell.at >= cutoff);
      if (series.cells.length === 0) this.series.delete(id);
      count += series.cells.length;
    }
    this.cellCount = count;
  }
}

export function metricKey(metric: MetricId): string {
  const dims = [...metric.dimensions].sort((a, b) => compare(a.Name, b.Name)).map((d) => [d.Name, d.Value]);
  return JSON.stringify([metric.namespace, metric.metricName, dims]);
}

function normalized(metric: MetricId): MetricId {
  return {
    namespace: metric.namespace,
    metricName: metric.metricName,
    dimensions: [...metric.dimensions]
      .sort((a, b) => compare(a.Name, b.Name))
      .map((d) => ({ Name: d.Name, Value: d.Value })),
  };
}

function matches(metric: MetricId, filter: MetricFilter): boolean {
  if (filter.namespace !== undefined && metric.namespace !== filter.namespace) return false;
  if (filter.metricName !== undefined && metric.metricName !== filter.metricName) return false;
  return (filter.dimensions ?? []).every((want) =>
    metric.dimensions.some(
      (d) => d.Name === want.Name && (want.Value === undefined || d.Value === want.Value),
    ),
  );
}

/** The cell for (at, unit), made empty and put in time order when there is none. */
function findOrInsertCell(cells: Cell[], at: number, unit: string): Cell {
  const after = firstAtOrAfter(cells, at + 1);
  for (let i = after - 1; i >= 0 && (cells[i] as Cell).at === at; i--) {
    if ((cells[i] as Cell).unit === unit) return cells[i] as Cell;
  }
  const cell: Cell = { at, unit, ...emptyAggregate() };
  cells.splice(after, 0, cell);
  return cell;
}

/** Index of the first cell at or after `at` (cells are in time order). */
function firstAtOrAfter(cells: Cell[], at: number): number {
  let low = 0;
  let high = cells.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((cells[mid] as Cell).at < at) low = mid + 1;
    else high = mid;
  }
  return low;
}

function copy(cell: Cell): Aggregate {
  return {
    sampleCount: cell.sampleCount,
    sum: cell.sum,
    min: cell.min,
    max: cell.max,
    values: cell.values ? new Map(cell.values) : null,
  };
}

export function floorTo(value: number, step: number): number {
  return Math.floor(value / step) * step;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export const HOUR_MS = 3_600_000;

/** CloudWatch takes datapoints (PutMetricData, EMF) stamped from two weeks back to two hours ahead. */
export function isAcceptedTimestamp(at: number, now: number): boolean {
  return at >= now - 14 * 24 * HOUR_MS && at <= now + 2 * HOUR_MS;
}
