/**
 * A tenant's limiter item (one per shard) and what its state decides: its key, its attributes as
 * this container last saw them, the calls in flight, and which limit refuses a call, exactly.
 * The attributes are described in docs/adr/0004-exact-limits.md.
 */
import { DELIMITER } from "./ids";
import { tenantKey } from "./keys";
import {
  gcraAdmit,
  monthAllowance,
  requestGcra,
  rescaledTat,
  type ShardLimits,
  tokenGcra,
  untilNextMonth,
} from "./limits";
import type { ChargeMark } from "./tat-refund";

/** What refused a call: a limit of the tenant, its fair share of a contended endpoint, or a busy item. */
export type RefusalReason =
  | "requests"
  | "tokens"
  | "concurrency"
  | "monthly_budget"
  | "endpoint_busy"
  | "contention";

/** What the limiter item held, as far as this container knows. */
export interface LimiterSnapshot {
  requestTat?: number;
  tokenTat?: number;
  /**
   * Microseconds per unit each TAT was last charged at: under other limits, its units outstanding are
   * rescaled to theirs before anything is decided (rescaledTat; ADR 0004, "Limit changes").
   */
  requestInterval?: number;
  tokenInterval?: number;
  /** Counts the times the request TAT was restarted from "now"; guards an allotment's returned requests. */
  requestResets: number;
  /** Counts the times the token TAT was restarted from "now"; guards refunds (see settle). */
  tokenResets: number;
  /** Microseconds each TAT was moved back by refunds, ever: bounds how far a later refund may move it. */
  requestRefunded?: number;
  tokenRefunded?: number;
  month?: string;
  /** Tokens charged to this shard in `month`: its calls' reservations and usage, plus lent, minus borrowed. */
  monthUsed: number;
  leases: string[];
  /**
   * Per shared endpoint with a capacity: the same leases, of the calls in flight on that endpoint
   * (attribute `leases@<endpointName>`; docs/adr/0012-fair-share.md).
   */
  endpointLeases?: Record<string, string[]>;
  /** Markers `<expiry µs>:<id>` of the loans credited to this shard lately (see creditUpdate). */
  loans?: string[];
}

export interface AdmitRequest {
  tenantId: string;
  shard: number;
  limits: ShardLimits;
  /** Microseconds since the epoch. */
  now: number;
  /** Tokens reserved: an upper bound of the prompt plus the output. */
  tokens: number;
  leaseId: string;
  /** How long a lease lives if its holder never settles (a crashed Lambda). */
  leaseMicros: number;
  /** How long this tenant's calls typically take, when known: the wait a concurrency refusal reports. */
  typicalCallMicros?: number;
  /**
   * A call to a shared endpoint with a capacity: its lease is also kept per endpoint, and while the
   * endpoint is contended `share` caps this shard's calls in flight on it (ADR 0012).
   */
  endpoint?: { name: string; share?: number };
  /** An allotment (ADR 0004, Allotments): a batch of capacity this container admits calls from locally. */
  allotment?: AllotmentRequest;
}

/**
 * What an allotment takes besides `tokens`: `requests` request units and `slots` leases (calls in
 * flight), charged as if they arrived `holdMicros` from now, since the container may spend them until
 * then; and the unused part of an earlier allotment, given back in the same write.
 */
export interface AllotmentRequest {
  requests: number;
  slots: number;
  holdMicros: number;
  /** The container already holds slots or capacity from earlier takes: the item must still exist (an erase ends it). */
  renewal: boolean;
  giveBack?: GiveBack | undefined;
}

/** Capacity taken earlier and not used: returned to the item if the TATs it was charged to still hold it. */
export interface GiveBack {
  /** Microseconds each TAT would move back: the unused units times the interval they were charged at. */
  requestMicros: number;
  tokenMicros: number;
  /** Where the allotment's take left each TAT: how much of it may go back (tat-refund.ts). */
  requestMark: ChargeMark;
  tokenMark: ChargeMark;
  /** Unused tokens, for the month's charge. */
  tokens: number;
  /** The resets counters when it was taken: a restart since then already forgot it. */
  requestResets: number;
  tokenResets: number;
  /** The month its tokens were charged to: another month's budget is not this one's. */
  month: string;
}

export interface Refusal {
  reason: RefusalReason;
  /** Microseconds until the call could be admitted, as far as this state tells. */
  retryAfter: number;
  /** For a monthly_budget refusal: the tokens left in the month, as seen. */
  monthRemaining?: number;
  /** For an endpoint_busy refusal: the calls in flight this shard may hold on the endpoint. */
  share?: number;
}

/** The least wait a concurrency refusal reports: a slot rarely frees sooner, and clients should not spin. */
const MIN_SLOT_WAIT_MICROS = 1_000_000;

export const limiterKey = (tenantId: string, shard: number) => ({
  pk: tenantKey(tenantId),
  sk: `LIMITER${DELIMITER}${shard}`,
});

export const emptySnapshot = (): LimiterSnapshot => ({
  requestResets: 0,
  tokenResets: 0,
  monthUsed: 0,
  leases: [],
});

/** Where an admission left a TAT (the snapshot after it): a later refund of its units is bounded by it. */
export function chargeMark(tat: number | undefined, refunded: number | undefined): ChargeMark {
  return { tatAfter: tat ?? 0, refundedAt: refunded ?? 0 };
}

/** What an admission takes: one request and one lease, unless it is an allotment. */
export function admissionCost(request: AdmitRequest) {
  const allotment = request.allotment;
  return {
    requests: allotment?.requests ?? 1,
    slots: allotment?.slots ?? 1,
    hold: allotment?.holdMicros ?? 0,
  };
}

/** Tokens this shard has charged to `month`. */
export function usedIn(snapshot: LimiterSnapshot | undefined, month: string): number {
  return snapshot?.month === month ? snapshot.monthUsed : 0;
}

/** Tokens this shard may still charge to `month` before it must borrow. */
export function headroom(
  snapshot: LimiterSnapshot | undefined,
  month: string,
  budget: number,
  shard: number,
): number {
  return monthAllowance(budget, shard) - usedIn(snapshot, month);
}

/** Given the item as it is, which limit refuses this admission (exactly), if any. */
export function exactRefusal(
  request: AdmitRequest,
  snapshot: LimiterSnapshot,
  month: string,
): Refusal | undefined {
  const { limits, now, tokens, shard } = request;
  const cost = admissionCost(request);
  const left = headroom(snapshot, month, limits.monthlyTokens, shard);
  if (tokens > left) {
    return { reason: "monthly_budget", retryAfter: untilNextMonth(now), monthRemaining: Math.max(0, left) };
  }
  const tats = tatsFor(snapshot, limits, now);
  const requests = gcraAdmit(requestGcra(limits), tats.requestTat, now, cost.requests, cost.hold);
  if (!requests.allowed) return { reason: "requests", retryAfter: requests.retryAfter };
  const tokenDecision = gcraAdmit(tokenGcra(limits), tats.tokenTat, now, tokens, cost.hold);
  if (!tokenDecision.allowed) return { reason: "tokens", retryAfter: tokenDecision.retryAfter };
  if (liveLeases(snapshot, now) + cost.slots > limits.concurrency) {
    return { reason: "concurrency", retryAfter: expectedSlotWait(snapshot.leases, request) };
  }
  const endpoint = request.endpoint;
  if (endpoint?.share !== undefined && cost.slots > 0) {
    const onEndpoint = snapshot.endpointLeases?.[endpoint.name] ?? [];
    if (live(onEndpoint, now) + cost.slots > endpoint.share) {
      const retryAfter = expectedSlotWait(onEndpoint, request);
      return { reason: "endpoint_busy", retryAfter, share: endpoint.share };
    }
  }
  return undefined;
}

/** The item's TATs in the scale of these limits: what GCRA decides with (see rescaledTat). */
export function tatsFor(snapshot: LimiterSnapshot, limits: ShardLimits, now: number) {
  return {
    requestTat: rescaledTat(snapshot.requestTat, snapshot.requestInterval, requestGcra(limits).interval, now),
    tokenTat: rescaledTat(snapshot.tokenTat, snapshot.tokenInterval, tokenGcra(limits).interval, now),
  };
}

/** Whether a TAT still runs ahead of now at an interval these limits no longer have: rescale it first. */
export function needsRescale(snapshot: LimiterSnapshot, limits: ShardLimits, now: number): boolean {
  const stale = (tat: number | undefined, stored: number | undefined, interval: number) =>
    tat !== undefined && tat > now && stored !== undefined && stored !== interval;
  return (
    stale(snapshot.requestTat, snapshot.requestInterval, requestGcra(limits).interval) ||
    stale(snapshot.tokenTat, snapshot.tokenInterval, tokenGcra(limits).interval)
  );
}

/** The attribute holding a tenant's leases on one endpoint. */
export const endpointLeasesAttribute = (endpointName: string) => `${ENDPOINT_LEASES_PREFIX}${endpointName}`;
const ENDPOINT_LEASES_PREFIX = "leases@";

/**
 * When a slot is expected to free: the tenant's typical call duration minus how long the oldest call
 * in flight has run, at least a second and at most until the earliest lease expires (a crashed
 * holder's slot frees then). Without a typical duration, the least wait.
 */
export function expectedSlotWait(leases: readonly string[], request: AdmitRequest): number {
  const { now, leaseMicros, typicalCallMicros } = request;
  const earliestExpiry = Math.min(...leases.map(leaseExpiry).filter((expiry) => expiry > now));
  const latest = Math.max(1000, earliestExpiry - now);
  const oldestStarted = earliestExpiry - leaseMicros;
  const expected = typicalCallMicros === undefined ? 0 : typicalCallMicros - (now - oldestStarted);
  return Math.min(latest, Math.max(MIN_SLOT_WAIT_MICROS, expected));
}

/** Leases still in force at `now`: the calls in flight. */
export function liveLeases(snapshot: LimiterSnapshot, now: number): number {
  return live(snapshot.leases, now);
}

function live(leases: readonly string[], now: number): number {
  return leases.filter((element) => leaseExpiry(element) > now).length;
}

/** The expiry of a lease, or of a loan marker (both are `<expiry µs>:<id>`). */
export function leaseExpiry(element: string): number {
  return Number(element.slice(0, element.indexOf(":")));
}

/** The attributes of a stored item (as read, or as a failed condition returned it). */
export function toSnapshot(item: Record<string, unknown>): Partial<LimiterSnapshot> {
  const snapshot: Partial<LimiterSnapshot> = {};
  if (typeof item.requestTat === "number") snapshot.requestTat = item.requestTat;
  if (typeof item.tokenTat === "number") snapshot.tokenTat = item.tokenTat;
  if (typeof item.requestInterval === "number") snapshot.requestInterval = item.requestInterval;
  if (typeof item.tokenInterval === "number") snapshot.tokenInterval = item.tokenInterval;
  if (typeof item.requestResets === "number") snapshot.requestResets = item.requestResets;
  if (typeof item.tokenResets === "number") snapshot.tokenResets = item.tokenResets;
  if (typeof item.requestRefunded === "number") snapshot.requestRefunded = item.requestRefunded;
  if (typeof item.tokenRefunded === "number") snapshot.tokenRefunded = item.tokenRefunded;
  if (typeof item.month === "string") snapshot.month = item.month;
  if (typeof item.monthUsed === "number") snapshot.monthUsed = item.monthUsed;
  if (item.leases instanceof Set) snapshot.leases = [...item.leases].map(String);
  if (item.loans instanceof Set) snapshot.loans = [...item.loans].map(String);
  for (const [name, value] of Object.entries(item)) {
    if (!name.startsWith(ENDPOINT_LEASES_PREFIX) || !(value instanceof Set)) continue;
    snapshot.endpointLeases ??= {};
    snapshot.endpointLeases[name.slice(ENDPOINT_LEASES_PREFIX.length)] = [...value].map(String);
  }
  return snapshot;
}
