/**
 * The usage ledger (docs/adr/0010-usage-ledger.md): per tenant, UTC hour and model, what the calls
 * used, as their settles recorded it. One item per hour and model in the tenant's partition (days
 * are their hours added up); a call adds to it with one UpdateItem, reports read it back with one
 * Query per tenant.
 */
import type { DynamoClient } from "./dynamodb/client";
import type { UpdateInput } from "./dynamodb/operations";
import { tenantKey } from "./keys";

import type { RefusalReason } from "./limiter-item";

export type { RefusalReason };

/** One admitted call, settled. */
export interface SettledCall {
  model: string;
  route: "shared" | "dedicated";
  /** `error`: the call failed after admission and was refunded. */
  outcome: "ok" | "error";
  /** What was charged. */
  tokens: number;
  /** Where the model's protocol splits them. */
  split?: { promptTokens: number; completionTokens: number };
}

/** Every refusal reason, in the order reports list them. */
export const REFUSAL_REASONS: readonly RefusalReason[] = [
  "requests",
  "tokens",
  "concurrency",
  "monthly_budget",
  "endpoint_busy",
  "contention",
];

/** Counters of one ledger item, as they are added to it. */
export type LedgerCounters = Record<string, number>;

/** Adds `counters` into `sum` (a counter never added reads as 0); returns `sum`. */
export function addCounters(sum: LedgerCounters, counters: LedgerCounters): LedgerCounters {
  for (const [name, value] of Object.entries(counters)) sum[name] = (sum[name] ?? 0) + Number(value);
  return sum;
}

/** The refusal counters of summed counters, by reason as the limiter names it (monthly_budget, ...). */
export function refusalsOf(counters: LedgerCounters): Record<string, number> {
  return Object.fromEntries(
    Object.entries(counters)
      .filter(([name]) => name.startsWith("refused"))
      .map(([name, value]) => [snake(name.slice("refused".length)), value]),
  );
}

/** MonthlyBudget → monthly_budget. */
function snake(name: string): string {
  return name.replace(/[A-Z]/g, (letter, at) => `${at === 0 ? "" : "_"}${letter.toLowerCase()}`);
}

const USAGE_PREFIX = "USAGE#";
const SEPARATOR = "#";

/** The UTC day of a moment (epoch milliseconds), as reports name it: YYYY-MM-DD. */
export function dayOf(epochMs: number): string {
  return new Date(epochMs).toISOString().slice(0, 10);
}

/** The UTC hour of a moment (epoch milliseconds), as ledger keys name it: YYYY-MM-DDTHH. */
export function hourOf(epochMs: number): string {
  return new Date(epochMs).toISOString().slice(0, 13);
}

/** The counters one settled call adds. */
export function callCounters(call: SettledCall): LedgerCounters {
  return {
    requests: 1,
    tokens: call.tokens,
    ...(call.split
      ? { promptTokens: call.split.promptTokens, completionTokens: call.split.completionTokens }
      : {}),
    ...(call.outcome === "error" ? { errors: 1 } : {}),
    [call.route === "shared" ? "sharedCalls" : "dedicatedCalls"]: 1,
  };
}

/** The counter a refusal adds to: refusedRequests, refusedTokens, refusedConcurrency, refusedMonthlyBudget... */
export function refusalCounter(reason: RefusalReason): string {
  const words = reason.split("_").map((word) => word[0]?.toUpperCase() + word.slice(1));
  return `refused${words.join("")}`;
}

/**
 * The UpdateItem that adds `counters` to a tenant's hour and model, and sets its expiry
 * `retentionDays` after its day. Counter names are Atrium's own; values are non-negative integers.
 */
export function ledgerUpdate(
  tableName: string,
  entry: { tenantId: string; hour: string; model: string; counters: LedgerCounters },
  retentionDays: number,
): UpdateInput {
  const day = entry.hour.slice(0, 10);
  const names: Record<string, string> = { "#model": "model", "#hour": "hour", "#expiresAt": "expiresAt" };
  const values: Record<string, unknown> = {
    ":model": entry.model,
    ":hour": entry.hour,
    ":expiresAt": Math.floor(Date.parse(`${day}T00:00:00Z`) / 1000) + (retentionDays + 1) * 86_400,
  };
  const adds: string[] = [];
  Object.entries(entry.counters).forEach(([counter, amount], i) => {
    if (!Number.isInteger(amount) || amount < 0) throw new Error(`Not a counter value: ${counter}=${amount}`);
    names[`#c${i}`] = counter;
    values[`:c${i}`] = amount;
    adds.push(`#c${i} :c${i}`);
  });
  return {
    TableName: tableName,
    Key: { pk: tenantKey(entry.tenantId), sk: `${USAGE_PREFIX}${entry.hour}${SEPARATOR}${entry.model}` },
    UpdateExpression: `SET #model = :model, #hour = :hour, #expiresAt = :expiresAt ADD ${adds.join(", ")}`,
    ExpressionAttributeNames: names,
    ExpressionAttributeValues: values,
  };
}

/** One ledger item, read: its hour (YYYY-MM-DDTHH), model and counters. */
export interface LedgerEntry {
  hour: string;
  model: string;
  counters: LedgerCounters;
}

/** A tenant's ledger from hour `from` to hour `to` (inclusive; YYYY-MM-DDTHH, or a whole day YYYY-MM-DD), by one paged Query. */
export async function readLedger(
  db: DynamoClient,
  tableName: string,
  tenantId: string,
  from: string,
  to: string,
): Promise<LedgerEntry[]> {
  const entries: LedgerEntry[] = [];
  let startKey: Record<string, unknown> | undefined;
  do {
    const page = await db.query({
      TableName: tableName,
      KeyConditionExpression: "#pk = :pk AND #sk BETWEEN :from AND :to",
      ExpressionAttributeNames: { "#pk": "pk", "#sk": "sk" },
      ExpressionAttributeValues: {
        ":pk": tenantKey(tenantId),
        ":from": `${USAGE_PREFIX}${from}`,
        // Every hour and model of the last one: "~" sorts after every character a key may hold there.
        ":to": `${USAGE_PREFIX}${to}${to.length === 10 ? "T~" : `${SEPARATOR}~`}`,
      },
      ConsistentRead: true,
      ...(startKey ? { ExclusiveStartKey: startKey } : {}),
    });
    for (const item of page.Items ?? []) {
      const { pk: _pk, sk: _sk, model, hour, expiresAt: _expiresAt, ...counters } = item;
      entries.push({ hour: String(hour), model: String(model), counters: counters as LedgerCounters });
    }
    startKey = page.LastEvaluatedKey;
  } while (startKey);
  return entries;
}
