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
/** The most an "idle" guess may run ahead of now to absorb concurrent writers (see admissionUpdate). */
const MAX_SLACK_MICROS = 50_000;
/** Slack is only used while the limiter was busy this recently, so a burst from idle stays exact. */
const RECENT_MICROS = 1_000_000;
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
  /** Per container and item: how far concurrent writers were seen ahead of this container's clock. */
  private readonly slack = new Map<string, Slack>();

  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** The client this store writes with (one store per tenant when clients are tenant-scoped). */
  get client(): DynamoDBDocumentClient {
    return this.db;
  }

  async admit(request: AdmitRequest): Promise<Admission> {
    const cacheKey = `${request.tenantId}${DELIMITER}${request.shard}`;
    let snapshot = this.known.get(cacheKey);
    let writes = 0;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const month = monthOf(request.now);
      const element = `${request.now + request.leaseMicros}:${request.leaseId}`;
      const slack = this.slack.get(cacheKey) ?? { requests: 0, tokens: 0 };
      const input = admissionUpdate(this.tableName, request, snapshot, month, element, slack);
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
        const actual = { ...emptySnapshot(), ...toSnapshot(err.Item ? unmarshall(err.Item) : {}) };
        this.slack.set(cacheKey, learnSlack(slack, actual, request.now));
        snapshot = actual;
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
  async settle(lease: Lease, usedTokens: number, now: number): Promise<{ writes: number }> {
    const refund = lease.tokens - usedTokens;
    const known = this.known.get(`${lease.tenantId}${DELIMITER}${lease.shard}`);
    // Giving tokens back only matters while the token TAT runs ahead of now; idle, it changes nothing.
    const tokenTatAhead = known?.tokenTat !== undefined && known.tokenTat > now;
    const parts = { tat: refund < 0 || (refund > 0 && tokenTatAhead), month: refund !== 0 };
    try {
      await this.db.send(new UpdateCommand(settleUpdate(this.tableName, lease, refund, parts, true)));
      this.forget(lease);
      return { writes: 1 };
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      const old = toSnapshot(err.Item ? unmarshall(err.Item) : {});
      const stillOurs = {
        tat: parts.tat && (refund < 0 || old.tokenResets === lease.tokenResets),
        month: parts.month && old.month === lease.month,
      };
      await this.db.send(new UpdateCommand(settleUpdate(this.tableName, lease, refund, stillOurs, false)));
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

export interface Slack {
  requests: number;
  tokens: number;
}

/** A TAT found just ahead of now means concurrent writers: guess that far ahead next time (bounded). */
function learnSlack(slack: Slack, actual: LimiterSnapshot, now: number): Slack {
  const learn = (current: number, tat: number | undefined) => {
    const ahead = (tat ?? now) - now;
    return ahead > current && ahead <= MAX_SLACK_MICROS ? Math.min(MAX_SLACK_MICROS, 2 * ahead) : current;
  };
  return { requests: learn(slack.requests, actual.requestTat), tokens: learn(slack.tokens, actual.tokenTat) };
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
  slack: Slack = { requests: 0, tokens: 0 },
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

  gcraForm("#rTat", "r", requests, 1, snapshot?.requestTat, slack.requests);
  const tokensIdle = gcraForm("#tTat", "t", tokenLimit, tokens, snapshot?.tokenTat, slack.tokens);
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
    ExpressionAttributeValues: Object.fromEntries(
      Object.entries(values).filter(([key]) =>
        new RegExp(`${key}\\b`).test(`${updateExpression} ${conditionExpression}`),
      ),
    ),
    ReturnValues: "UPDATED_NEW",
    ReturnValuesOnConditionCheckFailure: "ALL_OLD",
  };

  /**
   * Adds one GCRA's condition and update in the predicted form; returns whether it predicted idle.
   * An idle guess may treat the call as `slack` later than now: it then admits only what GCRA admits
   * at now (slack + increment <= window) and charges at least as much, so it can refuse early but
   * never admit more. It absorbs writers a few milliseconds ahead, which would otherwise fail the guess.
   */
  function gcraForm(
    attr: string,
    prefix: string,
    limit: Gcra,
    cost: number,
    knownTat: number | undefined,
    learned: number,
  ) {
    const increment = cost * limit.interval;
    const idle = knownTat === undefined || knownTat <= now;
    if (idle) {
      const recent = knownTat !== undefined && knownTat > now - RECENT_MICROS;
      const slackUsed = recent ? Math.max(0, Math.min(learned, limit.window - increment)) : 0;
      conditions.push(`(attribute_not_exists(${attr}) OR ${attr} <= :${prefix}IdleUntil)`);
      sets.push(`${attr} = :${prefix}Start`);
      values[`:${prefix}IdleUntil`] = now + slackUsed;
      values[`:${prefix}Start`] = now + slackUsed + increment;
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

/**
 * A settle's UpdateItem. Guarded, a positive refund requires that the token TAT has not restarted
 * since admission (a restart forgot the reservation: refunding it would free capacity twice) and the
 * month correction requires the same month. Unguarded, it applies only the parts known to be ours.
 */
function settleUpdate(
  tableName: string,
  lease: Lease,
  refund: number,
  parts: { tat: boolean; month: boolean },
  guarded: boolean,
): UpdateCommandInput {
  const sets: string[] = [];
  const adds: string[] = [];
  const conditions: string[] = [];
  const values: Record<string, unknown> = { ":lease": new Set([lease.element]) };
  if (parts.tat) {
    sets.push("#tTat = #tTat - :refundMicros");
    values[":refundMicros"] = refund * lease.tokenInterval;
    if (guarded && refund > 0) {
      conditions.push("#tResets = :resets");
      values[":resets"] = lease.tokenResets;
    }
  }
  if (parts.month) {
    adds.push("#used :usedDelta");
    values[":usedDelta"] = -refund;
    if (guarded) {
      conditions.push("#month = :month");
      values[":month"] = lease.month;
    }
  }
  const update = [
    sets.length > 0 ? `SET ${sets.join(", ")}` : "",
    adds.length > 0 ? `ADD ${adds.join(", ")}` : "",
    "DELETE #leases :lease",
  ]
    .filter(Boolean)
    .join(" ");
  const condition = conditions.join(" AND ");
  return {
    TableName: tableName,
    Key: limiterKey(lease.tenantId, lease.shard),
    UpdateExpression: update,
    ...(condition ? { ConditionExpression: condition, ReturnValuesOnConditionCheckFailure: "ALL_OLD" } : {}),
    ExpressionAttributeNames: namesIn(update, condition),
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
