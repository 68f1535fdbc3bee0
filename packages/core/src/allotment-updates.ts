/**
 * The give-back write of an allotment (docs/adr/0004-exact-limits.md, Allotments) when it cannot ride
 * in the next allotment's admission: the unused requests and tokens go back to the item, and slots
 * no longer needed are released. Like a settle, it never re-creates an erased item and gives back
 * only what a restart or a new month has not already forgotten.
 */
import type { UpdateInput } from "./dynamodb/operations";
import type { GiveBack, LimiterSnapshot } from "./limiter-item";
import { EXISTS, type Parts, update } from "./limiter-updates";
import { refundExpression, type SafeRefund } from "./tat-refund";

/** What a give-back returns: each TAT's safe refund (tat-refund.ts), and whether the month's tokens. */
export interface GiveBackParts {
  requests: SafeRefund | undefined;
  tokens: SafeRefund | undefined;
  month: boolean;
}

export interface GiveBackWrite {
  tenantId: string;
  shard: number;
  /** Absent when it only releases slots. */
  giveBack?: GiveBack;
  /** Slot leases to release, here and (with `endpoint`) on the endpoint's lease set. */
  release: readonly string[];
  endpoint?: string;
  /** When it is written (microseconds): bounds how far each TAT may move back. */
  now: number;
}

/** `parts`: what to give back; each part is conditioned on its guard (resets, month) still holding. */
export function giveBackUpdate(tableName: string, write: GiveBackWrite, parts: GiveBackParts): UpdateInput {
  const { giveBack } = write;
  const set: string[] = [];
  const add: string[] = [];
  const conditions = [EXISTS];
  const values: Record<string, unknown> = {};
  const tat = (prefix: "r" | "t", refund: SafeRefund, resets: number) => {
    const back = refundExpression(prefix, refund);
    set.push(`#${prefix}Tat = #${prefix}Tat - :${prefix}Back`);
    add.push(back.add);
    conditions.push(back.condition, `#${prefix}Resets = :${prefix}Resets`);
    Object.assign(values, back.values, { [`:${prefix}Resets`]: resets });
  };
  if (giveBack && parts.requests) tat("r", parts.requests, giveBack.requestResets);
  if (giveBack && parts.tokens) tat("t", parts.tokens, giveBack.tokenResets);
  if (giveBack && parts.month && giveBack.tokens > 0) {
    add.push("#used :usedDelta");
    values[":usedDelta"] = -giveBack.tokens;
    conditions.push("#month = :month");
    values[":month"] = giveBack.month;
  }
  const remove: string[] = [];
  if (write.release.length > 0) {
    values[":lease"] = new Set(write.release);
    remove.push("#leases :lease", ...(write.endpoint ? ["#epLeases :lease"] : []));
  }
  const expression: Parts = { set, add, remove, conditions, values };
  if (write.endpoint) expression.endpoint = write.endpoint;
  return update(tableName, write.tenantId, write.shard, expression);
}

/** After a give-back failed on `item`: the parts of `parts` no restart, refund or new month has ruled out since. */
export function partsStillOurs(
  giveBack: GiveBack,
  item: LimiterSnapshot,
  parts: GiveBackParts,
): GiveBackParts {
  const still = (refund: SafeRefund | undefined, resets: number, itemResets: number, refunded = 0) =>
    refund && itemResets === resets && refunded <= refund.cap ? refund : undefined;
  return {
    requests: still(parts.requests, giveBack.requestResets, item.requestResets, item.requestRefunded),
    tokens: still(parts.tokens, giveBack.tokenResets, item.tokenResets, item.tokenRefunded),
    month: parts.month && item.month === giveBack.month,
  };
}

/**
 * Adds leases to an existing item, with no limit in the condition: each replaces a slot its holder
 * already counts there (a stream outliving its slot's lease), and is added before that slot goes.
 */
export function holdLeasesUpdate(
  tableName: string,
  write: { tenantId: string; shard: number; elements: readonly string[]; endpoint?: string },
): UpdateInput {
  const expression: Parts = {
    add: ["#leases :lease", ...(write.endpoint ? ["#epLeases :lease"] : [])],
    conditions: [EXISTS],
    values: { ":lease": new Set(write.elements) },
  };
  if (write.endpoint) expression.endpoint = write.endpoint;
  return update(tableName, write.tenantId, write.shard, expression);
}
