import { getMetricData, getMetricStatistics, readMetric } from "./cloudwatch-get";
import {
  CloudWatchError,
  invalidValue,
  missing,
  type Params,
  pageToken,
  readOffset,
  UNITS,
} from "./cloudwatch-params";
import { type Aggregate, valuesAggregate } from "./cloudwatch-statistics";
import {
  type Datum,
  HOUR_MS,
  isAcceptedTimestamp,
  type MetricId,
  type MetricStore,
} from "./cloudwatch-store";

/**
 * The CloudWatch operations the local stand-in serves, on input any wire protocol decoded. Outputs
 * are plain objects: `Date` for timestamps, `Map` for maps, so each protocol can encode them its way.
 */

export interface OperationContext {
  store: MetricStore;
  now: () => number;
}

export type Output = Record<string, unknown> | undefined;
export type Operation = (input: Params, context: OperationContext) => Output;

export const OPERATIONS: Record<string, Operation> = {
  PutMetricData: putMetricData,
  GetMetricData: getMetricData,
  GetMetricStatistics: getMetricStatistics,
  ListMetrics: listMetrics,
};

const MAX_DATUMS = 1000;
const MAX_VALUES = 150;
const LIST_PAGE = 500;

function putMetricData(input: Params, { store, now }: OperationContext): Output {
  const namespace = input.string("Namespace", { required: true, max: 255 }) as string;
  if (namespace.startsWith(":") || namespace.startsWith("AWS/")) {
    throw invalidValue("Namespace", namespace, "namespaces starting with 'AWS/' are reserved for AWS");
  }
  const datums = [
    ...input.items("MetricData", { max: MAX_DATUMS }),
    ...input.items("EntityMetricData").flatMap((entity) => entity.items("MetricData", { max: MAX_DATUMS })),
  ];
  if (datums.length === 0) throw missing("MetricData");
  if (datums.length > MAX_DATUMS) {
    throw new CloudWatchError("InvalidParameterValue", `At most ${MAX_DATUMS} datapoints per request.`);
  }
  // All validated before any is stored: a refused request stores nothing.
  const parsed = datums.map((datum) => readDatum(datum, namespace, now()));
  for (const { metric, datum } of parsed) store.put(metric, datum);
  return undefined;
}

function readDatum(input: Params, namespace: string, now: number): { metric: MetricId; datum: Datum } {
  const metric = readMetric(input, namespace);
  const at = input.timestamp("Timestamp") ?? now;
  if (!isAcceptedTimestamp(at, now)) {
    throw invalidValue(
      input.pathOf("Timestamp"),
      new Date(at).toISOString(),
      "it must be within the past two weeks and at most two hours ahead",
    );
  }
  const unit = input.enumerated("Unit", UNITS) ?? "None";
  const resolution = input.integer("StorageResolution", { min: 1 });
  if (resolution !== undefined && resolution !== 1 && resolution !== 60) {
    throw invalidValue(input.pathOf("StorageResolution"), resolution, "use 1 or 60");
  }
  return { metric, datum: { at, unit, highResolution: resolution === 1, aggregate: readValues(input) } };
}

/** Exactly one of Value, StatisticValues or Values (with Counts). */
function readValues(input: Params): Aggregate {
  const given = ["Value", "StatisticValues", "Values"].filter((name) => input.has(name));
  if (given.length !== 1) {
    throw new CloudWatchError(
      "InvalidParameterCombination",
      `${input.path} must have exactly one of Value, StatisticValues or Values${given.length ? `, not ${given.join(" and ")}` : ""}.`,
    );
  }
  const value = input.number("Value");
  if (value !== undefined)
    return { sampleCount: 1, sum: value, min: value, max: value, values: new Map([[value, 1]]) };
  const set = input.object("StatisticValues");
  if (set) {
    const [sampleCount, sum, min, max] = ["SampleCount", "Sum", "Minimum", "Maximum"].map(
      (name) => set.number(name, true) as number,
    ) as [number, number, number, number];
    if (sampleCount <= 0 || min > max) {
      throw invalidValue(
        set.path,
        { sampleCount, min, max },
        "SampleCount must be positive and Minimum ≤ Maximum",
      );
    }
    return { sampleCount, sum, min, max, values: null };
  }
  const values = input.numbers("Values", MAX_VALUES) ?? [];
  const counts = input.numbers("Counts", MAX_VALUES) ?? values.map(() => 1);
  if (values.length === 0 || counts.length !== values.length || counts.some((c) => c <= 0)) {
    throw new CloudWatchError(
      "InvalidParameterValue",
      `${input.path}: Values must not be empty, and Counts (if given) must hold one positive count per value.`,
    );
  }
  return valuesAggregate(values, counts);
}

function listMetrics(input: Params, { store, now }: OperationContext): Output {
  const filters = input.items("Dimensions", { max: 10 }).map((filter) => {
    const name = filter.string("Name", { required: true, max: 255 }) as string;
    const value = filter.string("Value", { max: 1024 });
    return value === undefined ? { Name: name } : { Name: name, Value: value };
  });
  const namespace = input.string("Namespace", { max: 255 });
  const metricName = input.string("MetricName", { max: 255 });
  const recent = input.enumerated("RecentlyActive", ["PT3H"]);
  const metrics = store
    .metrics({
      ...(namespace ? { namespace } : {}),
      ...(metricName ? { metricName } : {}),
      dimensions: filters,
      ...(recent ? { activeSince: now() - 3 * HOUR_MS } : {}),
    })
    .map(({ metric }) => ({
      Namespace: metric.namespace,
      MetricName: metric.metricName,
      Dimensions: metric.dimensions,
    }))
    .sort((a, b) => orderKey(a).localeCompare(orderKey(b)));
  const offset = readOffset(input, metrics.length);
  const page = metrics.slice(offset, offset + LIST_PAGE);
  const next = offset + LIST_PAGE < metrics.length ? { NextToken: pageToken(offset + LIST_PAGE) } : {};
  return { Metrics: page, ...next };
}

function orderKey(metric: { Namespace: string; MetricName: string; Dimensions: unknown }): string {
  return JSON.stringify([metric.Namespace, metric.MetricName, metric.Dimensions]);
}
