/**
 * How much of a charge's unused units a TAT may give back, safely (docs/adr/0004-exact-limits.md,
 * "Refunds"). A TAT is a cursor on a timeline of slots, one per unit charged; moving it back moves
 * every slot charged after the refunded ones. That is safe only while each moved slot still starts
 * after the moment its unit was used, which is at most MAX_FLOOR_LEAD after its charge's clock. So a
 * refund may move the cursor back only as far as the refunded charge's own end stands beyond
 * `now + MAX_FLOOR_LEAD`, less what other refunds moved it since; the item counts refunds to bound that.
 */
import { MAX_HOLD_MICROS } from "./allotment";

/** How far ahead of its writer's clock a charge's slots may start: the longest hold (an allotment's). */
export const MAX_FLOOR_LEAD_MICROS = MAX_HOLD_MICROS;

/** Where a charge left a TAT, and the item's refund counter then: what bounds a later refund of it. */
export interface ChargeMark {
  tatAfter: number;
  refundedAt: number;
}

/** A refund that may be applied: `micros` to move the TAT back, if the refund counter is at most `cap`. */
export interface SafeRefund {
  micros: number;
  cap: number;
}

/** The part of `micros` a refund at `now` may give back, or undefined when none may. */
export function safeRefund(micros: number, mark: ChargeMark, now: number): SafeRefund | undefined {
  const room = mark.tatAfter - (now + MAX_FLOOR_LEAD_MICROS);
  const back = Math.min(micros, room);
  if (!(back > 0)) return undefined;
  return { micros: back, cap: mark.refundedAt + room - back };
}

/** The condition and update of a refund on one TAT (`#rTat`/`#tTat` with its counter `#rRefunded`/`#tRefunded`). */
export function refundExpression(prefix: "r" | "t", refund: SafeRefund) {
  return {
    condition: `(attribute_not_exists(#${prefix}Refunded) OR #${prefix}Refunded <= :${prefix}RefundCap)`,
    add: `#${prefix}Refunded :${prefix}Back`,
    values: { [`:${prefix}RefundCap`]: refund.cap, [`:${prefix}Back`]: refund.micros },
  };
}
