/**
 * Admission and settlement on a tenant's limiter item: every limit checked and reserved by one
 * conditional UpdateItem, with no read. The proof of exactness is in docs/adr/0004-exact-limits.md.
 */
import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import {
  type DynamoDBDocumentClient,
  GetCommand,
  UpdateCommand,
  type UpdateCommandInput,
} from "@aws-sdk/lib-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import { DELIMITER } from "./ids";
import { tenantKey } from "./keys";
import { type Gcra, gcra, gcraAdmit, monthOf, type ShardLimits, untilNextMonth } from "./limits";

export type RefusalReason = "requests" | "tokens" | "concurrency" | "monthly_budget" | "contention";

/** What the limiter item held, as far as this container knows. */
export interface LimiterSnapshot {
  requestTat?: number;
  tokenTat?: number;
  /** Counts the times the token TAT was restarted from "now"; guards refunds (see settle). */
  tokenResets: number;
  month?: string;
  monthUsed: number;
  leases: string[];
}

/** A held reservation: released and corrected by settle. */
export interface Lease {
  tenantId: string;
  shard: number;
  element: string;
  tokens: number;
  tokenInterval: number;
  tokenResets: number;
  month: string;
}

export interface AdmitRequest {
  tenantId: string;
  shard: number;
  limits: ShardLimits;
  /** Microseconds since the epoch. */
  now: number;
  /** Tokens reserved: an upper bound of the prompt plus max_tokens. */
  tokens: number;
  leaseId: string;
  /** How long a lease lives if its holder never settles (a crashed Lambda). */
  leaseMicros: number;
}

export type Admission =
  | { admitted: true; lease: Lease; snapshot: LimiterSnapshot; writes: number }
  | { admitted: false; reason: RefusalReason; retryAfter: number; snapshot: LimiterSnapshot; writes: number };

const MAX_ATTEMPTS = 4;
const TTL_SECONDS = 40 * 24 * 3600;
const CONTENTION_RETRY_MICROS = 50_000;

const names = {
  "#rTat": "requestTat",
  "#tTat": "tokenTat",
  "#tResets": "tokenResets",
  "#month": "month",
  "#used": "monthUsed",
  "#leases": "leases",
  "#expiresAt": "expiresAt",
};

export const limiterKey = (tenantId: string, shard: number) => ({
  pk: tenantKey(tenantId),
  sk: `LIMITER${DELIMITER}${shard}`,
});

export class LimiterStore {
  /** Per container: the last state seen per limiter item, used only to choose the update's form. */
  private readonly known = new Map<string, LimiterSnapshot>();

  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async admit(request: AdmitRequest): Promise<Admission> {
    const cacheKey = `${request.tenantId}${DELIMITER}${request.shard}`;
    let snapshot = this.known.get(cacheKey);
    let writes = 0;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const month = monthOf(request.now);
      const element = `${request.now + request.leaseMicros}:${request.leaseId}`;
      const input = admissionUpdate(this.tableName, request, snapshot, month, element);
      try {
        writes += 1;
        const { Attributes } = await this.db.send(new UpdateCommand(input));
        const after = { ...(snapshot ?? emptySnapshot()), ...toSnapshot(Attributes ?? {}) };
        this.known.set(cacheKey, after);
        const lease: Lease = {
          tenantId: request.tenantId,
          shard: request.shard,
          element,
          tokens: request.tokens,
          tokenInterval: gcra(request.limits.tokensPerMinute).interval,
          tokenResets: after.tokenResets,
          month,
        };
        return { admitted: true, lease, snapshot: after, writes };
      } catch (err) {
        if (!(err instanceof ConditionalCheckFailedException)) throw err;
        snapshot = { ...emptySnapshot(), ...toSnapshot(err.Item ? unmarshall(err.Item) : {}) };
        this.known.set(cacheKey, snapshot);
      }
      const refusal = exactRefusal(request, snapshot, month);
      if (refusal) return { admitted: false, ...refusal, snapshot, writes };
      const expired = snapshot.leases.filter((element) => leaseExpiry(element) <= request.now);
      if (expired.length > 0) {
        // Leases of holders that never settled: drop them, then try again.
        writes += 1;
        await this.dropLeases(request.tenantId, request.shard, expired);
        snapshot = { ...snapshot, leases: snapshot.leases.filter((element) => !expired.includes(element)) };
      }
    }
    return {
      admitted: false,
      reason: "contention",
      retryAfter: CONTENTION_RETRY_MICROS,
      snapshot: snapshot ?? emptySnapshot(),
      writes,
    };
  }

  /**
   * Releases the lease and replaces the reservation with what was used: one UpdateItem, plus one
   * more only when the month rolled over or the token TAT restarted while the call ran.
   */
  async settle(lease: Lease, usedTokens: number): Promise<{ writes: number }> {
    const refund = lease.tokens - usedTokens;
    const key = limiterKey(lease.tenantId, lease.shard);
    const full: UpdateCommandInput = {
      TableName: this.tableName,
      Key: key,
      UpdateExpression: "SET #tTat = #tTat - :refundMicros ADD #used :usedDelta DELETE #leases :lease",
      ConditionExpression: "#tResets = :resets AND #month = :month",
      ExpressionAttributeNames: pick("#tTat", "#used", "#leases", "#tResets", "#month"),
      ExpressionAttributeValues: {
        ":refundMicros": refund * lease.tokenInterval,
        ":usedDelta": -refund,
        ":lease": new Set([lease.element]),
        ":resets": lease.tokenResets,
        ":month": lease.month,
      },
      ReturnValuesOnConditionCheckFailure: "ALL_OLD",
    };
    try {
      await this.db.send(new UpdateCommand(full));
      this.forget(lease);
      return { writes: 1 };
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      const old = toSnapshot(err.Item ? unmarshall(err.Item) : {});
      await this.db.send(new UpdateCommand(partialSettle(this.tableName, lease, refund, old)));
      this.forget(lease);
      return { writes: 2 };
    }
  }

  /** The limiter item as stored (for usage reports; not on the admission path). */
  async read(tenantId: string, shard: number): Promise<LimiterSnapshot> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: limiterKey(tenantId, shard), ConsistentRead: true }),
    );
    return { ...emptySnapshot(), ...toSnapshot(Item ?? {}) };
  }

  private async dropLeases(tenantId: string, shard: number, elements: string[]): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: limiterKey(tenantId, shard),
        UpdateExpression: "DELETE #leases :expired",
        ExpressionAttributeNames: pick("#leases"),
        ExpressionAttributeValues: { ":expired": new Set(elements) },
      }),
    );
  }

  /** Our own settle moved the item: the next admission should not trust the cached form. */
  private forget(lease: Lease): void {
    const cacheKey = `${lease.tenantId}${DELIMITER}${lease.shard}`;
    const known = this.known.get(cacheKey);
    if (known) known.leases = known.leases.filter((element) => element !== lease.element);
  }
}

function emptySnapshot(): LimiterSnapshot {
  return { tokenResets: 0, monthUsed: 0, leases: [] };
}

/**
 * The one UpdateItem of an admission. DynamoDB cannot compute max(tat, now), so each GCRA takes
 * the form the container's last-seen state predicts: "idle" (restart from now) or "busy" (advance
 * the stored TAT). Each form's condition only holds in its own case, so a wrong guess can only fail,
 * never over-admit; the failure returns the item, and the next attempt uses the exact form.
 */
export function admissionUpdate(
  tableName: string,
  request: AdmitRequest,
  snapshot: LimiterSnapshot | undefined,
  month: string,
  leaseElement: string,
): UpdateCommandInput {
  const { limits, now, tokens } = request;
  const requests = gcra(limits.requestsPerMinute, limits.burst);
  const tokenLimit = gcra(limits.tokensPerMinute);
  const sets: string[] = ["#expiresAt = :ttl"];
  const adds: string[] = ["#leases :lease"];
  const conditions: string[] = [];
  const values: Record<string, unknown> = {
    ":now": now,
    ":ttl": Math.floor(now / 1_000_000) + TTL_SECONDS,
    ":lease": new Set([leaseElement]),
    ":concurrency": limits.concurrency,
    ":month": month,
    ":cost": tokens,
  };

  gcraForm("#rTat", "r", requests, 1, snapshot?.requestTat);
  const tokensIdle = gcraForm("#tTat", "t", tokenLimit, tokens, snapshot?.tokenTat);
  if (tokensIdle) {
    adds.push("#tResets :one");
    values[":one"] = 1;
  }

  conditions.push("(attribute_not_exists(#leases) OR size(#leases) < :concurrency)");

  const sameMonth = snapshot?.month === month;
  if (sameMonth) {
    conditions.push("(#month = :month AND #used <= :usedLimit)");
    adds.push("#used :cost");
    values[":usedLimit"] = limits.monthlyTokens - tokens;
  } else {
    conditions.push("(attribute_not_exists(#month) OR #month < :month)");
    sets.push("#month = :month", "#used = :cost");
  }

  const updateExpression = `SET ${sets.join(", ")} ADD ${adds.join(", ")}`;
  const conditionExpression = conditions.join(" AND ");
  return {
    TableName: tableName,
    Key: limiterKey(request.tenantId, request.shard),
    UpdateExpression: updateExpression,
    ConditionExpression: conditionExpression,
    // DynamoDB refuses names an expression does not use.
    ExpressionAttributeNames: namesIn(updateExpression, conditionExpression),
    ExpressionAttributeValues: values,
    ReturnValues: "UPDATED_NEW",
    ReturnValuesOnConditionCheckFailure: "ALL_OLD",
  };

  /** Adds one GCRA's condition and update in the predicted form; returns whether it predicted idle. */
  function gcraForm(attr: string, prefix: string, limit: Gcra, cost: number, knownTat: number | undefined) {
    const increment = cost * limit.interval;
    const idle = knownTat === undefined || knownTat <= now;
    if (idle) {
      conditions.push(`(attribute_not_exists(${attr}) OR ${attr} <= :now)`);
      sets.push(`${attr} = :${prefix}Start`);
      values[`:${prefix}Start`] = now + increment;
    } else {
      conditions.push(`(${attr} > :now AND ${attr} <= :${prefix}Latest)`);
      sets.push(`${attr} = ${attr} + :${prefix}Increment`);
      values[`:${prefix}Latest`] = now + limit.window - increment;
      values[`:${prefix}Increment`] = increment;
    }
    return idle;
  }
}

/** Given the item as it is, which limit refuses this admission (exactly), if any. */
export function exactRefusal(
  request: AdmitRequest,
  snapshot: LimiterSnapshot,
  month: string,
): { reason: RefusalReason; retryAfter: number } | undefined {
  const { limits, now, tokens } = request;
  const used = snapshot.month === month ? snapshot.monthUsed : 0;
  if (used + tokens > limits.monthlyTokens)
    return { reason: "monthly_budget", retryAfter: untilNextMonth(now) };
  const requests = gcraAdmit(gcra(limits.requestsPerMinute, limits.burst), snapshot.requestTat, now, 1);
  if (!requests.allowed) return { reason: "requests", retryAfter: requests.retryAfter };
  const tokenDecision = gcraAdmit(gcra(limits.tokensPerMinute), snapshot.tokenTat, now, tokens);
  if (!tokenDecision.allowed) return { reason: "tokens", retryAfter: tokenDecision.retryAfter };
  const live = snapshot.leases.map(leaseExpiry).filter((expiry) => expiry > now);
  if (live.length >= limits.concurrency) {
    return { reason: "concurrency", retryAfter: Math.max(1000, Math.min(...live) - now) };
  }
  return undefined;
}

/** Settle when the full form's guard failed: release the lease always, correct only what is still ours. */
function partialSettle(tableName: string, lease: Lease, refund: number, old: Partial<LimiterSnapshot>) {
  const sets: string[] = [];
  const adds: string[] = [];
  const values: Record<string, unknown> = { ":lease": new Set([lease.element]) };
  const used: (keyof typeof names)[] = ["#leases"];
  if (old.tokenResets === lease.tokenResets && old.tokenTat !== undefined) {
    sets.push("#tTat = #tTat - :refundMicros");
    values[":refundMicros"] = refund * lease.tokenInterval;
    used.push("#tTat");
  }
  if (old.month === lease.month) {
    adds.push("#used :usedDelta");
    values[":usedDelta"] = -refund;
    used.push("#used");
  }
  const expression = [
    sets.length > 0 ? `SET ${sets.join(", ")}` : "",
    adds.length > 0 ? `ADD ${adds.join(", ")}` : "",
    "DELETE #leases :lease",
  ]
    .filter(Boolean)
    .join(" ");
  return {
    TableName: tableName,
    Key: limiterKey(lease.tenantId, lease.shard),
    UpdateExpression: expression,
    ExpressionAttributeNames: pick(...used),
    ExpressionAttributeValues: values,
  };
}

function namesIn(...expressions: string[]): Record<string, string> {
  const used = new Set(expressions.join(" ").match(/#\w+/g));
  return pick(...([...used] as (keyof typeof names)[]));
}

function pick(...aliases: (keyof typeof names)[]): Record<string, string> {
  return Object.fromEntries(aliases.map((alias) => [alias, names[alias]]));
}

/** Leases still in force at `now`: the calls in flight. */
export function liveLeases(snapshot: LimiterSnapshot, now: number): number {
  return snapshot.leases.filter((element) => leaseExpiry(element) > now).length;
}

function leaseExpiry(element: string): number {
  return Number(element.slice(0, element.indexOf(":")));
}

function toSnapshot(item: Record<string, unknown>): Partial<LimiterSnapshot> {
  const snapshot: Partial<LimiterSnapshot> = {};
  if (typeof item.requestTat === "number") snapshot.requestTat = item.requestTat;
  if (typeof item.tokenTat === "number") snapshot.tokenTat = item.tokenTat;
  if (typeof item.tokenResets === "number") snapshot.tokenResets = item.tokenResets;
  if (typeof item.month === "string") snapshot.month = item.month;
  if (typeof item.monthUsed === "number") snapshot.monthUsed = item.monthUsed;
  // A string set: the document client gives a Set, unmarshall of a raw error item gives a Set too.
  if (item.leases instanceof Set) snapshot.leases = [...item.leases].map(String);
  return snapshot;
}
