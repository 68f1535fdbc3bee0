/**
 * The conditional UpdateItems of the limiter: admit, settle, drop expired leases, and move month
 * allowance between a tenant's shards (lend, credit). Each condition holds only in the case its
 * update is right for, so a wrong guess fails (and returns the item) rather than over-admits.
 * docs/adr/0004-exact-limits.md has the argument.
 */
import type { UpdateCommandInput } from "@aws-sdk/lib-dynamodb";
import { type AdmitRequest, endpointLeasesAttribute, type LimiterSnapshot, limiterKey } from "./limiter-item";
import { type Gcra, gcra, monthAllowance } from "./limits";

/** A held reservation: released and corrected by settle. */
export interface Lease {
  tenantId: string;
  shard: number;
  element: string;
  tokens: number;
  tokenInterval: number;
  tokenResets: number;
  month: string;
  /** The shared endpoint whose lease set also holds it (ADR 0012), if any. */
  endpoint?: string;
}

export interface Slack {
  requests: number;
  tokens: number;
}

/** Slack is only used while the limiter was busy this recently, so a burst from idle stays exact. */
const RECENT_MICROS = 1_000_000;
const TTL_SECONDS = 40 * 24 * 3600;

const names = {
  "#pk": "pk",
  "#rTat": "requestTat",
  "#tTat": "tokenTat",
  "#tResets": "tokenResets",
  "#month": "month",
  "#used": "monthUsed",
  "#leases": "leases",
  "#loans": "loans",
  "#expiresAt": "expiresAt",
};

/** Dropping leases never creates an item: after an erase, a late write must find nothing. */
const EXISTS = "attribute_exists(#pk)";
const NEW_MONTH = "(attribute_not_exists(#month) OR #month < :month)";

interface Parts {
  set?: string[];
  add?: string[];
  remove?: string[];
  conditions: string[];
  values: Record<string, unknown>;
  /** The endpoint whose lease set `#epLeases` names. */
  endpoint?: string;
}

function update(tableName: string, tenantId: string, shard: number, parts: Parts): UpdateCommandInput {
  const aliases: Record<string, string> = parts.endpoint
    ? { ...names, "#epLeases": endpointLeasesAttribute(parts.endpoint) }
    : names;
  const expression = [
    parts.set?.length ? `SET ${parts.set.join(", ")}` : "",
    parts.add?.length ? `ADD ${parts.add.join(", ")}` : "",
    parts.remove?.length ? `DELETE ${parts.remove.join(", ")}` : "",
  ]
    .filter(Boolean)
    .join(" ");
  const condition = parts.conditions.join(" AND ");
  const used = `${expression} ${condition}`;
  return {
    TableName: tableName,
    Key: limiterKey(tenantId, shard),
    UpdateExpression: expression,
    ConditionExpression: condition,
    // DynamoDB refuses names and values an expression does not use.
    ExpressionAttributeNames: Object.fromEntries(
      Object.entries(aliases).filter(([alias]) => new RegExp(`${alias}\\b`).test(used)),
    ),
    ExpressionAttributeValues: Object.fromEntries(
      Object.entries(parts.values).filter(([key]) => new RegExp(`${key}\\b`).test(used)),
    ),
    ReturnValues: "UPDATED_NEW",
    ReturnValuesOnConditionCheckFailure: "ALL_OLD",
  };
}

const ttl = (now: number) => Math.floor(now / 1_000_000) + TTL_SECONDS;

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
  const set: string[] = ["#expiresAt = :ttl"];
  const add: string[] = ["#leases :lease"];
  const conditions: string[] = ["(attribute_not_exists(#leases) OR size(#leases) < :concurrency)"];
  const values: Record<string, unknown> = {
    ":now": now,
    ":ttl": ttl(now),
    ":lease": new Set([leaseElement]),
    ":concurrency": limits.concurrency,
    ":month": month,
    ":cost": tokens,
  };

  gcraForm(
    "#rTat",
    "r",
    gcra(limits.requestsPerMinute, limits.burst),
    1,
    snapshot?.requestTat,
    slack.requests,
  );
  const tokenLimit = gcra(limits.tokensPerMinute);
  if (gcraForm("#tTat", "t", tokenLimit, tokens, snapshot?.tokenTat, slack.tokens)) {
    add.push("#tResets :one");
    values[":one"] = 1;
  }

  const endpoint = request.endpoint;
  if (endpoint) {
    add.push("#epLeases :lease");
    if (endpoint.share !== undefined) {
      conditions.push("(attribute_not_exists(#epLeases) OR size(#epLeases) < :share)");
      values[":share"] = endpoint.share;
    }
  }

  const allowance = monthAllowance(limits.monthlyTokens, request.shard);
  // The new-month form cannot check the allowance, so a call above it always takes the checked form.
  if (snapshot?.month === month || tokens > allowance) {
    conditions.push("(#month = :month AND #used <= :usedLimit)");
    add.push("#used :cost");
    values[":usedLimit"] = allowance - tokens;
  } else {
    conditions.push(NEW_MONTH);
    set.push("#month = :month", "#used = :cost");
  }
  return update(tableName, request.tenantId, request.shard, {
    set,
    add,
    conditions,
    values,
    ...(endpoint ? { endpoint: endpoint.name } : {}),
  });

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
    // A cost above the window can never be admitted: the busy form's condition then always fails.
    const idle = (knownTat === undefined || knownTat <= now) && increment <= limit.window;
    if (idle) {
      const recent = knownTat !== undefined && knownTat > now - RECENT_MICROS;
      const slackUsed = recent ? Math.max(0, Math.min(learned, limit.window - increment)) : 0;
      conditions.push(`(attribute_not_exists(${attr}) OR ${attr} <= :${prefix}IdleUntil)`);
      set.push(`${attr} = :${prefix}Start`);
      values[`:${prefix}IdleUntil`] = now + slackUsed;
      values[`:${prefix}Start`] = now + slackUsed + increment;
    } else {
      conditions.push(`(${attr} > :now AND ${attr} <= :${prefix}Latest)`);
      set.push(`${attr} = ${attr} + :${prefix}Increment`);
      values[`:${prefix}Latest`] = now + limit.window - increment;
      values[`:${prefix}Increment`] = increment;
    }
    return idle;
  }
}

/**
 * A settle's UpdateItem: releases the lease and gives back `refund` unused tokens. Guarded, the token
 * refund requires that the token TAT has not restarted since admission (a restart forgot the
 * reservation: refunding it would free capacity twice) and the month refund the same month.
 * Unguarded, it applies only the parts known to be ours. Either way the lease must still be held:
 * so a settle never re-creates an erased item, and a retried settle never refunds twice.
 */
export function settleUpdate(
  tableName: string,
  lease: Lease,
  refund: number,
  parts: { tat: boolean; month: boolean },
  guarded: boolean,
): UpdateCommandInput {
  const set: string[] = [];
  const add: string[] = [];
  const conditions: string[] = ["contains(#leases, :element)"];
  const values: Record<string, unknown> = { ":lease": new Set([lease.element]), ":element": lease.element };
  if (parts.tat) {
    set.push("#tTat = #tTat - :refundMicros");
    values[":refundMicros"] = refund * lease.tokenInterval;
    if (guarded) {
      conditions.push("#tResets = :resets");
      values[":resets"] = lease.tokenResets;
    }
  }
  if (parts.month) {
    add.push("#used :usedDelta");
    values[":usedDelta"] = -refund;
    if (guarded) {
      conditions.push("#month = :month");
      values[":month"] = lease.month;
    }
  }
  return update(tableName, lease.tenantId, lease.shard, {
    set,
    add,
    remove: lease.endpoint ? ["#leases :lease", "#epLeases :lease"] : ["#leases :lease"],
    conditions,
    values,
    ...(lease.endpoint ? { endpoint: lease.endpoint } : {}),
  });
}

/**
 * Removes elements of a string set (expired leases, here and on an endpoint, or loan markers past
 * any retry) from an existing item.
 */
export function dropElementsUpdate(
  tableName: string,
  tenantId: string,
  shard: number,
  set: "leases" | "loans" | { endpoint: string },
  elements: string[],
): UpdateCommandInput {
  const endpoint = typeof set === "object" ? set.endpoint : undefined;
  return update(tableName, tenantId, shard, {
    remove: [`${endpoint ? "#epLeases" : `#${set}`} :expired`],
    conditions: [EXISTS],
    values: { ":expired": new Set(elements) },
    ...(endpoint ? { endpoint } : {}),
  });
}

export interface Transfer {
  tenantId: string;
  shard: number;
  /** Tokens of month allowance moved. */
  amount: number;
  month: string;
  /** Whether the shard's item is known to be in `month` already (else: an older month, or none). */
  sameMonth: boolean;
  now: number;
}

/**
 * The lender's side of a loan: charges `amount` to the lender's month as if used, only while that
 * leaves it within its allowance. Shard 0 may start its month by lending (creating its item).
 */
export function lendUpdate(tableName: string, transfer: Transfer, budget: number): UpdateCommandInput {
  const allowance = monthAllowance(budget, transfer.shard);
  const values = { ":month": transfer.month, ":amount": transfer.amount, ":ttl": ttl(transfer.now) };
  // As in admission: the new-month form cannot check the allowance, so only an amount within it may take it.
  const parts: Parts =
    transfer.sameMonth || transfer.amount > allowance
      ? {
          add: ["#used :amount"],
          conditions: ["#month = :month", "#used <= :usedLimit"],
          values: { ...values, ":usedLimit": allowance - transfer.amount },
        }
      : { set: ["#month = :month", "#used = :amount", "#expiresAt = :ttl"], conditions: [NEW_MONTH], values };
  return update(tableName, transfer.tenantId, transfer.shard, parts);
}

/**
 * The borrower's side: the loan lowers its month's charge, which makes room for its calls. An ADD,
 * so concurrent admissions and settles on the shard cannot make it fail (a compare-and-set lost
 * loans to them); the loan's `marker` in `loans` makes a retried credit fail instead of applying twice.
 */
export function creditUpdate(tableName: string, transfer: Transfer, marker: string): UpdateCommandInput {
  const values = {
    ":month": transfer.month,
    ":credit": -transfer.amount,
    ":marker": new Set([marker]),
    ":markerElement": marker,
  };
  const parts: Parts = transfer.sameMonth
    ? {
        add: ["#used :credit", "#loans :marker"],
        conditions: ["#month = :month", "NOT contains(#loans, :markerElement)"],
        values,
      }
    : {
        // Starting the month replaces last month's markers.
        set: ["#month = :month", "#used = :credit", "#loans = :marker", "#expiresAt = :ttl"],
        conditions: [NEW_MONTH],
        values: { ...values, ":ttl": ttl(transfer.now) },
      };
  return update(tableName, transfer.tenantId, transfer.shard, parts);
}
