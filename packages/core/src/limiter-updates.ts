/**
 * The conditional UpdateItems of the limiter: admit, settle, drop expired leases, and move month
 * allowance between a tenant's shards (lend, credit). Each condition holds only in the case its
 * update is right for, so a wrong guess fails (and returns the item) rather than over-admits.
 * docs/adr/0004-exact-limits.md has the argument.
 */
import type { UpdateInput } from "./dynamodb/operations";
import {
  type AdmitRequest,
  admissionCost,
  endpointLeasesAttribute,
  type LimiterSnapshot,
  limiterKey,
} from "./limiter-item";
import {
  type Gcra,
  LIMITER_ITEM_TTL_SECONDS,
  monthAllowance,
  requestGcra,
  rescaledTat,
  type ShardLimits,
  tokenGcra,
} from "./limits";
import { type ChargeMark, refundExpression, type SafeRefund, safeRefund } from "./tat-refund";

/** A held reservation: released and corrected by settle. */
export interface Lease {
  tenantId: string;
  shard: number;
  element: string;
  tokens: number;
  tokenInterval: number;
  tokenResets: number;
  /** Where its admission left the token TAT: bounds the refund of its unused tokens (tat-refund.ts). */
  tokenMark: ChargeMark;
  month: string;
  /** The shared endpoint whose lease set also holds it (ADR 0012), if any. */
  endpoint?: string;
}

const names = {
  "#pk": "pk",
  "#rTat": "requestTat",
  "#tTat": "tokenTat",
  "#rInterval": "requestInterval",
  "#tInterval": "tokenInterval",
  "#rResets": "requestResets",
  "#tResets": "tokenResets",
  "#rRefunded": "requestRefunded",
  "#tRefunded": "tokenRefunded",
  "#month": "month",
  "#used": "monthUsed",
  "#leases": "leases",
  "#loans": "loans",
  "#expiresAt": "expiresAt",
};

/** Dropping leases never creates an item: after an erase, a late write must find nothing. */
export const EXISTS = "attribute_exists(#pk)";
const NEW_MONTH = "(attribute_not_exists(#month) OR #month < :month)";

export interface Parts {
  set?: string[];
  add?: string[];
  remove?: string[];
  conditions: string[];
  values: Record<string, unknown>;
  /** The endpoint whose lease set `#epLeases` names. */
  endpoint?: string;
}

export function update(tableName: string, tenantId: string, shard: number, parts: Parts): UpdateInput {
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

const ttl = (now: number) => Math.floor(now / 1_000_000) + LIMITER_ITEM_TTL_SECONDS;

/**
 * The one UpdateItem of an admission. DynamoDB cannot compute max(tat, now), so each GCRA takes
 * the form the container's last-seen state predicts: "idle" (restart from now) or "busy" (advance
 * the stored TAT). Each form's condition only holds in its own case, so a wrong guess can only fail,
 * never over-admit; the failure returns the item, and the next attempt uses the exact form.
 * An allotment takes its requests, tokens and slots the same way, as if they arrived at the end of
 * its hold, and may give back an earlier allotment's unused part in the same write (ADR 0004).
 */
export function admissionUpdate(
  tableName: string,
  request: AdmitRequest,
  snapshot: LimiterSnapshot | undefined,
  month: string,
  leaseElements: readonly string[],
): UpdateInput {
  const { limits, now, tokens } = request;
  const cost = admissionCost(request);
  const giveBack = request.allotment?.giveBack;
  const set: string[] = ["#expiresAt = :ttl"];
  const add: string[] = [];
  const conditions: string[] = request.allotment?.renewal ? [EXISTS] : [];
  const values: Record<string, unknown> = {
    ":ttl": ttl(now),
    ":month": month,
    ":cost": tokens,
    ":one": 1,
    ":now": now,
  };
  if (leaseElements.length > 0) {
    add.push("#leases :lease");
    conditions.push("(attribute_not_exists(#leases) OR size(#leases) < :concurrency)");
    values[":lease"] = new Set(leaseElements);
    // Conditions cannot add: "size + slots <= limit" is "size < limit - slots + 1".
    values[":concurrency"] = limits.concurrency - leaseElements.length + 1;
  }

  gcraForm("r", requestGcra(limits), cost.requests, snapshot?.requestTat, {
    refund: giveBack && safeRefund(giveBack.requestMicros, giveBack.requestMark, now),
    resets: giveBack?.requestResets ?? 0,
  });
  gcraForm("t", tokenGcra(limits), tokens, snapshot?.tokenTat, {
    refund: giveBack && safeRefund(giveBack.tokenMicros, giveBack.tokenMark, now),
    resets: giveBack?.tokenResets ?? 0,
  });

  const endpoint = request.endpoint;
  if (endpoint && leaseElements.length > 0) {
    add.push("#epLeases :lease");
    if (endpoint.share !== undefined) {
      conditions.push("(attribute_not_exists(#epLeases) OR size(#epLeases) < :share)");
      values[":share"] = endpoint.share - leaseElements.length + 1;
    }
  }

  const allowance = monthAllowance(limits.monthlyTokens, request.shard);
  // The new-month form cannot check the allowance, so a call above it always takes the checked form.
  if (snapshot === undefined || snapshot.month === month || tokens > allowance) {
    // Tokens an earlier allotment charged to this month and did not use are given back in the same ADD.
    const returned = giveBack?.month === month ? giveBack.tokens : 0;
    // A container that does not know the item (a new one) takes either case in one write: the month
    // under way, or no item yet, whose month this ADD starts from nothing. Never with a give-back or
    // above the allowance: neither can apply to an item that is not there.
    const orAbsent = snapshot === undefined && returned === 0 && tokens <= allowance;
    conditions.push(
      orAbsent
        ? "((#month = :month AND #used <= :usedLimit) OR attribute_not_exists(#month))"
        : "(#month = :month AND #used <= :usedLimit)",
    );
    if (orAbsent) set.push("#month = :month");
    add.push("#used :charge");
    values[":usedLimit"] = allowance - tokens + returned;
    values[":charge"] = tokens - returned;
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
   * Adds one GCRA's condition and update in the predicted form. Either form, when its condition
   * holds, charges exactly what GCRA charges: never more (an early refusal), never less. Units given
   * back lower a busy TAT only while its resets counter shows no restart since they were charged.
   */
  function gcraForm(
    prefix: "r" | "t",
    limit: Gcra,
    units: number,
    knownTat: number | undefined,
    back: { refund: SafeRefund | undefined; resets: number },
  ) {
    const attr = `#${prefix}Tat`;
    const interval = `#${prefix}Interval`;
    const increment = units * limit.interval;
    // Both forms record the interval charged at; neither may apply to units outstanding at another
    // (a limit changed: the store rescales them first, rescaleUpdate), and the idle form only where none are.
    set.push(`${interval} = :${prefix}Interval`);
    values[`:${prefix}Interval`] = limit.interval;
    const sameScale = `attribute_not_exists(${interval}) OR ${interval} = :${prefix}Interval`;
    const hold = cost.hold;
    const floor = now + hold;
    // A cost above the window can never be admitted: the busy form's condition then always fails.
    const idle = (knownTat === undefined || knownTat <= floor) && hold + increment <= limit.window;
    if (idle) {
      conditions.push(
        `(attribute_not_exists(${attr}) OR ${attr} <= :${prefix}IdleUntil)`,
        `(${sameScale} OR ${attr} <= :now)`,
      );
      set.push(`${attr} = :${prefix}Start`);
      add.push(`#${prefix}Resets :one`);
      values[`:${prefix}IdleUntil`] = floor;
      values[`:${prefix}Start`] = floor + increment;
      return;
    }
    const returned = back.refund?.micros ?? 0;
    conditions.push(`(${attr} > :${prefix}Floor AND ${attr} <= :${prefix}Latest)`, `(${sameScale})`);
    set.push(`${attr} = ${attr} + :${prefix}Increment`);
    values[`:${prefix}Floor`] = floor + returned;
    values[`:${prefix}Latest`] = now + limit.window - increment + returned;
    values[`:${prefix}Increment`] = increment - returned;
    if (back.refund) {
      const refund = refundExpression(prefix, back.refund);
      conditions.push(`#${prefix}Resets = :${prefix}Resets`, refund.condition);
      add.push(refund.add);
      Object.assign(values, refund.values);
      values[`:${prefix}Resets`] = back.resets;
    }
  }
}

/**
 * Rescales the TATs that still run ahead of `now` at an interval other than these limits' (the
 * tenant's limits changed): the units outstanding stay outstanding at the new interval (rescaledTat).
 * A compare-and-set on the TAT and interval seen, so a concurrent write makes it fail and return the
 * item. It counts as a restart: refunds and give-backs charged before it are measured in the old
 * interval, and the resets guard now drops their TAT part (only ever refusing early).
 */
export function rescaleUpdate(
  tableName: string,
  tenantId: string,
  shard: number,
  seen: LimiterSnapshot,
  limits: ShardLimits,
  now: number,
): UpdateInput {
  const set: string[] = [];
  const add: string[] = [];
  const conditions: string[] = [];
  const values: Record<string, unknown> = { ":one": 1 };
  const rescale = (prefix: "r" | "t", tat: number | undefined, stored: number | undefined, limit: Gcra) => {
    if (tat === undefined || stored === undefined || tat <= now || stored === limit.interval) return;
    const scaled = rescaledTat(tat, stored, limit.interval, now);
    set.push(`#${prefix}Tat = :${prefix}Scaled`, `#${prefix}Interval = :${prefix}Interval`);
    add.push(`#${prefix}Resets :one`);
    conditions.push(`#${prefix}Tat = :${prefix}Seen`, `#${prefix}Interval = :${prefix}SeenInterval`);
    Object.assign(values, {
      [`:${prefix}Scaled`]: scaled,
      [`:${prefix}Interval`]: limit.interval,
      [`:${prefix}Seen`]: tat,
      [`:${prefix}SeenInterval`]: stored,
    });
  };
  rescale("r", seen.requestTat, seen.requestInterval, requestGcra(limits));
  rescale("t", seen.tokenTat, seen.tokenInterval, tokenGcra(limits));
  return update(tableName, tenantId, shard, { set, add, conditions, values });
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
  parts: { tat: SafeRefund | undefined; month: boolean },
  guarded: boolean,
): UpdateInput {
  const set: string[] = [];
  const add: string[] = [];
  const conditions: string[] = ["contains(#leases, :element)"];
  const values: Record<string, unknown> = { ":lease": new Set([lease.element]), ":element": lease.element };
  if (parts.tat) {
    // The bound on how far the TAT may move back holds whatever else is relaxed (tat-refund.ts).
    const back = refundExpression("t", parts.tat);
    set.push("#tTat = #tTat - :tBack");
    add.push(back.add);
    conditions.push(back.condition);
    Object.assign(values, back.values);
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
): UpdateInput {
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
export function lendUpdate(tableName: string, transfer: Transfer, budget: number): UpdateInput {
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
export function creditUpdate(tableName: string, transfer: Transfer, marker: string): UpdateInput {
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
