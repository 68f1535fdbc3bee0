import type { OperationContext, Output } from "./cloudwatch-operations";
import {
  CloudWatchError,
  invalidValue,
  type Params,
  pageToken,
  readOffset,
  UNITS,
} from "./cloudwatch-params";
import {
  type Aggregate,
  BASIC_STATISTICS,
  emptyAggregate,
  mergeAggregate,
  parseStat,
  type Stat,
  statValue,
} from "./cloudwatch-statistics";
import { type Dimension, FINE_RETENTION_MS, floorTo, type MetricId } from "./cloudwatch-store";

/** GetMetricData and GetMetricStatistics: a metric's statistics per period over a time range. */

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;
const MAX_QUERIES = 500;
const DEFAULT_MAX_DATAPOINTS = 100_800;
const MAX_STATISTICS_DATAPOINTS = 1440;
const QUERY_ID = /^[a-z][a-zA-Z0-9_]*$/;

/** Namespace, MetricName and Dimensions of a datum, a MetricStat's Metric or a statistics request. */
export function readMetric(input: Params, namespace?: string): MetricId {
  const metricName = input.string("MetricName", { required: true, max: 255 }) as string;
  const dimensions: Dimension[] = input.items("Dimensions", { max: 30 }).map((d) => ({
    Name: d.string("Name", { required: true, max: 255 }) as string,
    Value: d.string("Value", { required: true, max: 1024 }) as string,
  }));
  const names = new Set(dimensions.map((d) => d.Name));
  if (names.size !== dimensions.length) {
    throw invalidValue(input.pathOf("Dimensions"), dimensions, "a dimension name appears twice");
  }
  return {
    namespace: namespace ?? (input.string("Namespace", { required: true, max: 255 }) as string),
    metricName,
    dimensions,
  };
}

interface MetricQuery {
  id: string;
  label: string;
  metric: MetricId;
  periodMs: number;
  stat: Stat;
  unit?: string;
  returnData: boolean;
}

export function getMetricData(input: Params, { store, now }: OperationContext): Output {
  const queries = input.items("MetricDataQueries", { required: true, max: MAX_QUERIES }).map(readQuery);
  if (queries.length === 0) throw invalidValue("MetricDataQueries", [], "give at least one query");
  const ids = new Set(queries.map((q) => q.id));
  if (ids.size !== queries.length) {
    throw new CloudWatchError("InvalidParameterValue", "The Id of each MetricDataQuery must be unique.");
  }
  const { start, end } = readRange(input);
  const descending =
    (input.enumerated("ScanBy", ["TimestampDescending", "TimestampAscending"]) ?? "TimestampDescending") ===
    "TimestampDescending";
  const maxDatapoints = input.integer("MaxDatapoints", { min: 1 }) ?? DEFAULT_MAX_DATAPOINTS;

  const results = queries
    .filter((q) => q.returnData)
    .map((q) => {
      const from = roundedStart(start, q.periodMs, now());
      const buckets = store.aggregate(q.metric, { start: from, end, periodMs: q.periodMs, ...unitOf(q) });
      const points: [number, number][] = [];
      for (const [at, units] of buckets) {
        const value = statValue(mergedUnits(units), q.stat);
        if (value !== undefined) points.push([at, value]);
      }
      points.sort((a, b) => (descending ? b[0] - a[0] : a[0] - b[0]));
      return { query: q, points };
    });

  // A page holds at most MaxDatapoints datapoints, counted across the queries in order; a query with
  // none goes on the page where its place falls.
  const total = results.reduce((n, r) => n + r.points.length, 0);
  const offset = readOffset(input, total);
  const limit = offset + maxDatapoints;
  const page = [];
  let first = 0;
  for (const { query, points } of results) {
    const last = first + points.length;
    const from = Math.max(first, offset);
    const to = Math.min(last, limit);
    const onPage = points.length > 0 ? from < to : first >= offset && (first < limit || limit >= total);
    if (onPage) {
      const taken = points.slice(from - first, to - first);
      page.push({
        Id: query.id,
        Label: query.label,
        Timestamps: taken.map(([at]) => new Date(at)),
        Values: taken.map(([, value]) => value),
        StatusCode: to < last ? "PartialData" : "Complete",
      });
    }
    first = last;
  }
  return { MetricDataResults: page, Messages: [], ...(limit < total ? { NextToken: pageToken(limit) } : {}) };
}

function readQuery(input: Params): MetricQuery {
  const id = input.string("Id", { required: true, max: 255 }) as string;
  if (!QUERY_ID.test(id)) {
    throw invalidValue(
      input.pathOf("Id"),
      id,
      "it must start with a lowercase letter and hold only letters, digits and _",
    );
  }
  if (input.has("Expression")) {
    throw new CloudWatchError(
      "InvalidParameterValue",
      `${input.pathOf("Expression")}: metric math and Metrics Insights expressions are not supported by the local CloudWatch; use MetricStat.`,
    );
  }
  const stat = input.object("MetricStat", true) as Params;
  const metric = readMetric(stat.object("Metric", true) as Params);
  const statName = stat.string("Stat", { required: true, max: 255 }) as string;
  const parsed = parseStat(statName);
  if (!parsed) {
    throw invalidValue(
      stat.pathOf("Stat"),
      statName,
      `the local CloudWatch computes ${BASIC_STATISTICS.join(", ")} and percentiles (p50, p99.9)`,
    );
  }
  const unit = stat.enumerated("Unit", UNITS);
  return {
    id,
    label: input.string("Label", { max: 1024 }) ?? metric.metricName,
    metric,
    periodMs: readPeriod(stat),
    stat: parsed,
    ...(unit ? { unit } : {}),
    returnData: input.boolean("ReturnData") ?? true,
  };
}

export function getMetricStatistics(input: Params, { store, now }: OperationContext): Output {
  const metric = readMetric(input);
  const { start, end } = readRange(input);
  const periodMs = readPeriod(input);
  const basic = input.strings("Statistics", 5);
  const extended = input.strings("ExtendedStatistics", 10);
  if ((basic === undefined) === (extended === undefined)) {
    throw new CloudWatchError(
      "InvalidParameterCombination",
      "Must specify either Statistics or ExtendedStatistics, but not both.",
    );
  }
  const stats = (basic ?? []).map((name, i) => {
    const stat = parseStat(name);
    if (stat?.kind !== "basic") throw invalidValue(`Statistics.member.${i + 1}`, name);
    return stat;
  });
  const percentiles = (extended ?? []).map((name, i) => {
    const stat = parseStat(name);
    if (stat?.kind !== "percentile") throw invalidValue(`ExtendedStatistics.member.${i + 1}`, name);
    return stat;
  });
  const from = roundedStart(start, periodMs, now());
  const requested = Math.ceil((end - from) / periodMs);
  if (requested > MAX_STATISTICS_DATAPOINTS) {
    throw new CloudWatchError(
      "InvalidParameterCombination",
      `You have requested up to ${requested} datapoints, which exceeds the limit of ${MAX_STATISTICS_DATAPOINTS}.`,
    );
  }
  const unit = input.enumerated("Unit", UNITS);
  const datapoints = [];
  const buckets = store.aggregate(metric, { start: from, end, periodMs, ...(unit ? { unit } : {}) });
  for (const [at, units] of [...buckets].sort((a, b) => a[0] - b[0])) {
    for (const [unitName, aggregate] of units) {
      const point: Record<string, unknown> = { Timestamp: new Date(at), Unit: unitName };
      for (const stat of stats) point[stat.name] = statValue(aggregate, stat);
      const values = percentiles.flatMap((p) => {
        const value = statValue(aggregate, p);
        return value === undefined ? [] : [[p.name, value] as const];
      });
      if (percentiles.length > 0) point.ExtendedStatistics = new Map(values);
      datapoints.push(point);
    }
  }
  return { Label: metric.metricName, Datapoints: datapoints };
}

function readRange(input: Params): { start: number; end: number } {
  const start = input.timestamp("StartTime", true) as number;
  const end = input.timestamp("EndTime", true) as number;
  if (start >= end) {
    throw new CloudWatchError(
      "InvalidParameterValue",
      "The parameter StartTime must be less than the parameter EndTime.",
    );
  }
  return { start, end };
}

/** CloudWatch's periods: 1, 5, 10, 20, 30 seconds (high resolution) or any multiple of 60. */
function readPeriod(input: Params): number {
  const period = input.integer("Period", { required: true, min: 1 }) as number;
  if (![1, 5, 10, 20, 30].includes(period) && period % 60 !== 0) {
    throw invalidValue(input.pathOf("Period"), period, "use 1, 5, 10, 20, 30 or a multiple of 60");
  }
  return period * 1000;
}

/** CloudWatch rounds StartTime down: to the period below a minute, else by its age (1 min, 5 min, 1 h). */
function roundedStart(start: number, periodMs: number, now: number): number {
  if (periodMs < MINUTE_MS) return floorTo(start, periodMs);
  const age = now - start;
  const step = age <= FINE_RETENTION_MS ? MINUTE_MS : age <= 63 * DAY_MS ? 5 * MINUTE_MS : 60 * MINUTE_MS;
  return floorTo(start, step);
}

function unitOf(query: MetricQuery): { unit?: string } {
  return query.unit ? { unit: query.unit } : {};
}

/** Without a Unit in the query, data published in any unit counts. */
function mergedUnits(units: Map<string, Aggregate>): Aggregate {
  if (units.size === 1) return units.values().next().value as Aggregate;
  const merged = emptyAggregate();
  for (const aggregate of units.values()) mergeAggregate(merged, aggregate);
  return merged;
}
