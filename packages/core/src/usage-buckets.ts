/**
 * A tenant's usage in time buckets, from the ledger (GET /v1/usage?start=...), in a shape modelled on
 * OpenAI's usage API: a page of buckets, each with its results, one per model when grouped by model.
 */
import { invalidRequest } from "./errors";
import { addCounters, type LedgerCounters, type LedgerEntry, refusalsOf } from "./usage-ledger";

export type BucketWidth = "day" | "hour";

export interface BucketQuery {
  /** Epoch seconds, at a bucket boundary. */
  start: number;
  /** Epoch seconds, exclusive, at a bucket boundary. */
  end: number;
  width: BucketWidth;
  groupByModel: boolean;
}

const SECONDS: Record<BucketWidth, number> = { day: 86_400, hour: 3_600 };
/** As OpenAI's usage API: at most 31 daily or 168 hourly buckets in one answer. */
const MAX_BUCKETS: Record<BucketWidth, number> = { day: 31, hour: 168 };
export const BUCKET_PARAMETERS = ["start", "end", "bucket", "group_by"] as const;

/** Reads the query's parameters; a bad one is a 400 naming it. `now` in epoch seconds. */
export function parseBucketQuery(params: Record<string, string | undefined>, now: number): BucketQuery {
  const width = params.bucket ?? "day";
  if (width !== "day" && width !== "hour") {
    throw invalidRequest("invalid_request", "bucket: must be day or hour", "bucket");
  }
  const groupBy = params.group_by;
  if (groupBy !== undefined && groupBy !== "model") {
    throw invalidRequest("invalid_request", "group_by: only model is supported", "group_by");
  }
  if (params.start === undefined) {
    throw invalidRequest("invalid_request", "start: required (Unix seconds or an ISO 8601 date)", "start");
  }
  const size = SECONDS[width];
  const start = Math.floor(moment(params.start, "start") / size) * size;
  const end = Math.ceil((params.end === undefined ? now : moment(params.end, "end")) / size) * size;
  if (end <= start) throw invalidRequest("invalid_request", "end: must be after start", "end");
  if ((end - start) / size > MAX_BUCKETS[width]) {
    throw invalidRequest(
      "invalid_request",
      `end: at most ${MAX_BUCKETS[width]} ${width} buckets in one request; ask for a shorter range`,
      "end",
    );
  }
  return { start, end, width, groupByModel: groupBy === "model" };
}

/** Epoch seconds from Unix seconds or an ISO 8601 date or time. */
function moment(value: string, param: string): number {
  if (/^\d{1,12}$/.test(value)) return Number(value);
  const parsed = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value)
    ? Date.parse(value)
    : Number.NaN;
  if (Number.isNaN(parsed)) {
    throw invalidRequest("invalid_request", `${param}: must be Unix seconds or an ISO 8601 date`, param);
  }
  return Math.floor(parsed / 1000);
}

/** The ledger's hours the query covers, as `readLedger` takes them (YYYY-MM-DDTHH, inclusive). */
export function ledgerHours(query: BucketQuery): { from: string; to: string } {
  const hour = (seconds: number) => new Date(seconds * 1000).toISOString().slice(0, 13);
  return { from: hour(query.start), to: hour(query.end - 1) };
}

/** The page of buckets: every bucket of the range, empty ones included, results summed from the ledger. */
export function usageBuckets(entries: readonly LedgerEntry[], query: BucketQuery) {
  const size = SECONDS[query.width];
  const buckets = new Map<number, Map<string | null, LedgerCounters>>();
  for (let at = query.start; at < query.end; at += size) buckets.set(at, new Map());
  for (const entry of entries) {
    const at = Math.floor(Date.parse(`${entry.hour}:00:00Z`) / 1000 / size) * size;
    const results = buckets.get(at);
    if (!results) continue;
    const key = query.groupByModel ? entry.model : null;
    results.set(key, addCounters(results.get(key) ?? {}, entry.counters));
  }
  return {
    object: "page",
    data: [...buckets].map(([at, results]) => ({
      object: "bucket",
      start_time: at,
      end_time: at + size,
      results: [...results].map(([model, counters]) => result(model, counters)),
    })),
    has_more: false,
    next_page: null,
  };
}

function result(model: string | null, counters: LedgerCounters) {
  const count = (name: string) => counters[name] ?? 0;
  const refused = refusalsOf(counters);
  return {
    object: "usage.result",
    model,
    num_model_requests: count("requests"),
    input_tokens: count("promptTokens"),
    output_tokens: count("completionTokens"),
    /** What was charged; more than input plus output where a raw call's split is unknown. */
    tokens: count("tokens"),
    errors: count("errors"),
    refused,
    shared_calls: count("sharedCalls"),
    dedicated_calls: count("dedicatedCalls"),
  };
}
