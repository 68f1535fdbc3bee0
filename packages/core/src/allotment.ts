/**
 * An allotment, as one container holds it (docs/adr/0004-exact-limits.md, Allotments): a batch of a
 * tenant's request and token capacity taken in one conditional write, from which the container admits
 * calls locally until its hold ends, plus slots (leases of calls in flight) it reuses call after call.
 * Free of I/O: the limiter store takes and gives back; this only counts.
 */
import { chargeMark, type GiveBack, type LimiterSnapshot } from "./limiter-item";
import { requestGcra, type ShardLimits, tokenGcra } from "./limits";
import type { ChargeMark } from "./tat-refund";

/** A tenant is "seen often" here from this rate on; below it each call is admitted on its own. */
export const MIN_RATE_PER_SECOND = 1;
/** The fewest calls an allotment must be expected to serve, or single admissions are as cheap. */
export const MIN_CALLS_PER_ALLOTMENT = 3;
/** Calls an allotment is sized for at the tenant's rate here: about 1/32 of a write per call. */
export const CALLS_PER_ALLOTMENT = 32;
/** How long an allotment's capacity may be spent: long enough to batch, short enough to be given back soon. */
export const MIN_HOLD_MICROS = 100_000;
export const MAX_HOLD_MICROS = 2_000_000;
/**
 * How long a slot serves new calls after it was taken. A slot's lease outlives it by a call's whole
 * lease, so every call admitted on it ends before the slot expires.
 */
export const SLOT_REUSE_MICROS = 10_000_000;
/** An allotment takes at most this part of a limit's whole window, leaving the rest to other containers. */
const WINDOW_PART = 4;

/** One slot: a lease element in the item's `leases`, serving one call at a time here. */
export interface Slot {
  element: string;
  /** When the lease expires in the item (microseconds). */
  expiry: number;
  busy: boolean;
}

/** What a renewal asks the limiter store for. */
export interface AllotmentSize {
  requests: number;
  tokens: number;
  holdMicros: number;
}

/** How the take charged the item: what its give-back is measured and guarded by. */
export interface AllotmentCharge {
  requestInterval: number;
  tokenInterval: number;
  requestResets: number;
  tokenResets: number;
  requestMark: ChargeMark;
  tokenMark: ChargeMark;
}

/** How a take charged the item, from the item as the take left it (`after`). */
export function chargeAfter(limits: ShardLimits, after: LimiterSnapshot): AllotmentCharge {
  return {
    requestInterval: requestGcra(limits).interval,
    tokenInterval: tokenGcra(limits).interval,
    requestResets: after.requestResets,
    tokenResets: after.tokenResets,
    requestMark: chargeMark(after.requestTat, after.requestRefunded),
    tokenMark: chargeMark(after.tokenTat, after.tokenRefunded),
  };
}

/** The capacity taken, and what is left of it. */
export class Allotment {
  requestsLeft: number;
  tokensLeft: number;
  /** Tokens of calls admitted from it that have not settled yet. */
  private inFlight = 0;

  constructor(
    readonly shard: number,
    readonly month: string,
    readonly until: number,
    readonly size: AllotmentSize,
    private readonly charge: AllotmentCharge,
  ) {
    this.requestsLeft = size.requests;
    this.tokensLeft = size.tokens;
  }

  /** Whether a call reserving `tokens` may be admitted from it at `now`. */
  fits(tokens: number, now: number): boolean {
    return now < this.until && this.requestsLeft >= 1 && this.tokensLeft >= tokens;
  }

  take(tokens: number): void {
    this.requestsLeft -= 1;
    this.tokensLeft -= tokens;
    this.inFlight += tokens;
  }

  /**
   * A call admitted from it settled, having used `used` of its `reserved` tokens. Before the hold ends
   * the unused rest may serve other calls here; after it, it can only go back to the item.
   */
  settle(reserved: number, used: number): void {
    this.inFlight -= reserved;
    this.tokensLeft += reserved - Math.min(reserved, Math.max(0, used));
  }

  /** Whether calls admitted from it are still running (their unused tokens will come back). */
  get busy(): boolean {
    return this.inFlight > 0;
  }

  /** The unused capacity, as the item's give-back; the allotment is then spent. */
  giveBack(): GiveBack {
    const { charge } = this;
    const back: GiveBack = {
      requestMicros: this.requestsLeft * charge.requestInterval,
      tokenMicros: this.tokensLeft * charge.tokenInterval,
      tokens: this.tokensLeft,
      requestResets: charge.requestResets,
      tokenResets: charge.tokenResets,
      requestMark: charge.requestMark,
      tokenMark: charge.tokenMark,
      month: this.month,
    };
    this.requestsLeft = 0;
    this.tokensLeft = 0;
    return back;
  }
}

/**
 * The size of the next allotment for a tenant calling this container at `ratePerSecond`, each call
 * reserving up to `reservation` tokens: about CALLS_PER_ALLOTMENT calls, held between the bounds and
 * at most a quarter of each limit's window, its units within a quarter of each window too. Undefined
 * when it would not serve MIN_CALLS_PER_ALLOTMENT calls: single admissions then.
 */
export function allotmentSize(
  limits: ShardLimits,
  ratePerSecond: number,
  reservation: number,
): AllotmentSize | undefined {
  if (!(ratePerSecond > 0) || reservation <= 0) return undefined;
  const requestLimit = requestGcra(limits);
  const tokenLimit = tokenGcra(limits);
  // A hold never longer than a quarter of either window: a short burst window means a short hold.
  const longest = Math.min(
    MAX_HOLD_MICROS,
    requestLimit.window / WINDOW_PART,
    tokenLimit.window / WINDOW_PART,
  );
  const wanted = Math.max(MIN_HOLD_MICROS, (CALLS_PER_ALLOTMENT / ratePerSecond) * 1e6);
  const holdMicros = Math.round(Math.min(longest, wanted));
  const expected = Math.ceil((ratePerSecond * holdMicros) / 1e6);
  const fit = (window: number, interval: number) =>
    Math.floor(Math.min(window / WINDOW_PART, window - holdMicros) / interval);
  const requests = Math.min(expected + 1, fit(requestLimit.window, requestLimit.interval));
  const calls = Math.min(requests, Math.floor(fit(tokenLimit.window, tokenLimit.interval) / reservation));
  if (calls < MIN_CALLS_PER_ALLOTMENT) return undefined;
  return { requests: calls, tokens: calls * reservation, holdMicros };
}

/** A slot can serve a new call while its lease outlives that call's whole lease. */
export function slotServes(slot: Slot, now: number, callLeaseMicros: number): boolean {
  return !slot.busy && slot.expiry - now >= callLeaseMicros;
}

/**
 * Give-backs merged where their guards agree (month, resets), so they ride in one write. A merged
 * give-back keeps the lowest mark of those it merges: how far a TAT may move back is bounded by the
 * earliest charge's end (tat-refund.ts), so the merge can only give back less, never more.
 * `latest`: the item's resets counters as last seen. A TAT part charged before a restart counted
 * since then is already forgotten by it; only its month part still goes back, with the others.
 */
export function mergeGiveBacks(
  backs: readonly GiveBack[],
  latest?: { requestResets: number; tokenResets: number },
): GiveBack[] {
  const merged: GiveBack[] = [];
  const lower = (a: ChargeMark, b: ChargeMark): ChargeMark => ({
    tatAfter: Math.min(a.tatAfter, b.tatAfter),
    refundedAt: Math.min(a.refundedAt, b.refundedAt),
  });
  for (const back of latest ? backs.map((one) => withoutForgotten(one, latest)) : backs) {
    const same = merged.find(
      (other) =>
        other.month === back.month &&
        other.requestResets === back.requestResets &&
        other.tokenResets === back.tokenResets,
    );
    if (!same) {
      merged.push({ ...back });
      continue;
    }
    same.requestMicros += back.requestMicros;
    same.tokenMicros += back.tokenMicros;
    same.tokens += back.tokens;
    same.requestMark = lower(same.requestMark, back.requestMark);
    same.tokenMark = lower(same.tokenMark, back.tokenMark);
  }
  return merged.filter((back) => back.requestMicros > 0 || back.tokenMicros > 0 || back.tokens > 0);
}

/** A mark that bounds nothing: min() with any other keeps the other (its part moves no TAT). */
const NO_MARK: ChargeMark = { tatAfter: Number.POSITIVE_INFINITY, refundedAt: Number.POSITIVE_INFINITY };

/** The give-back without the TAT parts a later restart forgot, guarded as the latest resets are. */
export function withoutForgotten(
  back: GiveBack,
  latest: { requestResets: number; tokenResets: number },
): GiveBack {
  const out = { ...back };
  if (back.requestResets < latest.requestResets) {
    Object.assign(out, { requestMicros: 0, requestMark: NO_MARK, requestResets: latest.requestResets });
  }
  if (back.tokenResets < latest.tokenResets) {
    Object.assign(out, { tokenMicros: 0, tokenMark: NO_MARK, tokenResets: latest.tokenResets });
  }
  return out;
}
