import { UNITS } from "./cloudwatch-params";
import { valuesAggregate } from "./cloudwatch-statistics";
import { type Datum, isAcceptedTimestamp, type MetricId } from "./cloudwatch-store";

/**
 * CloudWatch's Embedded Metric Format: a JSON log line whose `_aws.CloudWatchMetrics` directives name
 * metrics whose values are the line's own top-level members. Deployed, CloudWatch Logs extracts
 * them from the function's output; locally, the platform takes the same lines from stdout.
 */

export interface MetricRecord {
  metric: MetricId;
  datum: Datum;
}

const MAX_DIMENSIONS = 30;
const MAX_METRICS = 100;
const MAX_VALUES = 100;

interface Directive {
  Namespace?: unknown;
  Dimensions?: unknown;
  Metrics?: unknown;
}

/** The metric datapoints one EMF line carries; undefined when the line is not an EMF document. */
export function parseEmf(line: string, now = Date.now()): MetricRecord[] | undefined {
  if (!line.startsWith("{") || !line.includes('"_aws"')) return undefined;
  let document: Record<string, unknown>;
  try {
    document = JSON.parse(line);
  } catch {
    return undefined;
  }
  const aws = document._aws as { Timestamp?: unknown; CloudWatchMetrics?: unknown } | undefined;
  if (typeof aws !== "object" || aws === null || !Array.isArray(aws.CloudWatchMetrics)) return undefined;
  const at = aws.Timestamp;
  // CloudWatch drops EMF metrics stamped outside the window it accepts.
  if (typeof at !== "number" || !isAcceptedTimestamp(at, now)) return [];
  return (aws.CloudWatchMetrics as Directive[]).flatMap((directive) => recordsOf(directive, document, at));
}

function recordsOf(directive: Directive, document: Record<string, unknown>, at: number): MetricRecord[] {
  const namespace = directive.Namespace;
  if (typeof namespace !== "string" || namespace.length === 0 || !Array.isArray(directive.Metrics)) return [];
  const dimensionSets = dimensionSetsOf(directive.Dimensions, document);
  return (directive.Metrics as unknown[]).slice(0, MAX_METRICS).flatMap((definition) => {
    const {
      Name: name,
      Unit: unit,
      StorageResolution: resolution,
    } = (definition ?? {}) as Record<string, unknown>;
    if (typeof name !== "string" || name.length === 0) return [];
    const values = valuesOf(document[name]);
    if (!values) return [];
    const known = (UNITS as readonly unknown[]).includes(unit);
    // Each dimension set makes its own metric, all with the same values.
    return dimensionSets.map((dimensions) => ({
      metric: { namespace, metricName: name, dimensions },
      datum: {
        at,
        unit: known ? (unit as string) : "None",
        highResolution: resolution === 1,
        aggregate: valuesAggregate(values),
      } satisfies Datum,
    }));
  });
}

/** Each set's dimensions with their values; a set naming a member the document lacks is skipped. */
function dimensionSetsOf(sets: unknown, document: Record<string, unknown>): MetricId["dimensions"][] {
  if (!Array.isArray(sets) || sets.length === 0) return [[]];
  return sets.flatMap((set) => {
    if (!Array.isArray(set) || set.length > MAX_DIMENSIONS) return [];
    const dimensions = set.map((name) => ({ Name: name, Value: document[name] }));
    const valid = dimensions.every(
      (d) => typeof d.Name === "string" && typeof d.Value === "string" && d.Value,
    );
    return valid ? [dimensions as MetricId["dimensions"]] : [];
  });
}

function valuesOf(value: unknown): number[] | undefined {
  const values = Array.isArray(value) ? value.slice(0, MAX_VALUES) : [value];
  const numbers = values.filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  return numbers.length > 0 ? numbers : undefined;
}

/**
 * Takes the EMF lines out of everything written to `stream` (process.stdout, where Powertools
 * prints them) and hands their metrics to `ingest`; all other output passes through untouched.
 * Returns the function that stops it.
 */
export function captureEmf(
  stream: NodeJS.WriteStream,
  ingest: (records: MetricRecord[]) => void,
): () => void {
  const original = stream.write;
  const tee = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]): boolean {
    const text =
      typeof chunk === "string" ? chunk : Buffer.isBuffer(chunk) ? chunk.toString("utf8") : undefined;
    if (text?.includes('"_aws"')) {
      const kept = text.split("\n").filter((line) => {
        const records = parseEmf(line);
        if (records) ingest(records);
        return !records;
      });
      const remaining = kept.join("\n");
      if (remaining.trim() === "") {
        const callback = rest.find((arg) => typeof arg === "function") as
          | ((err?: Error | null) => void)
          | undefined;
        if (callback) queueMicrotask(() => callback(null));
        return true;
      }
      return (original as (...args: unknown[]) => boolean).call(this, remaining, ...rest);
    }
    return (original as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  };
  stream.write = tee as typeof stream.write;
  return () => {
    // Someone may have wrapped it since (a test's spy): leave theirs in place.
    if (stream.write === tee) stream.write = original;
  };
}
