/**
 * The limit arithmetic, free of I/O: GCRA for requests and tokens in integer microseconds, a
 * tenant's effective limits (tier defaults, overrides) and their split over limiter shards, and the
 * prompt's share of a reservation. docs/adr/0004-exact-limits.md explains the algorithm and why it is exact.
 */
import { type Limits, type StageConfig, type TierSpec, tierSpec } from "./config";
import type { Tenant } from "./tenant";

export const MICROS_PER_MINUTE = 60_000_000;

/** One GCRA: a cost of n units moves the theoretical arrival time (TAT) by n * interval. */
export interface Gcra {
  /** Microseconds per unit (per request, or per token), rounded up so the rate never exceeds the limit. */
  interval: number;
  /** How far ahead of now the TAT may run: burst * interval. */
  window: number;
}

export function gcra(perMinute: number, burst = perMinute): Gcra {
  const interval = Math.ceil(MICROS_PER_MINUTE / perMinute);
  return { interval, window: burst * interval };
}

/** A shard's request limit (with its burst) and token limit as GCRAs. */
export const requestGcra = (limits: { requestsPerMinute: number; burst: number }) =>
  gcra(limits.requestsPerMinute, limits.burst);
export const tokenGcra = (limits: { tokensPerMinute: number }) => gcra(limits.tokensPerMinute);

export interface GcraDecision {
  allowed: boolean;
  /** The TAT after admitting (when allowed). */
  tat: number;
  /** When refused: microseconds until this cost could be admitted. */
  retryAfter: number;
}

/**
 * Admit `cost` units at `now` against a stored TAT (undefined for a fresh limiter). `hold`: units
 * an allotment may spend until `now + hold` are charged as if they arrived then (ADR 0004, Allotments).
 */
export function gcraAdmit(
  limit: Gcra,
  storedTat: number | undefined,
  now: number,
  cost: number,
  hold = 0,
): GcraDecision {
  const base = Math.max(storedTat ?? now, now + hold);
  const tat = base + cost * limit.interval;
  const over = tat - now - limit.window;
  return over <= 0 ? { allowed: true, tat, retryAfter: 0 } : { allowed: false, tat: base, retryAfter: over };
}

/**
 * A TAT built at `storedInterval` microseconds per unit, in the scale of `interval`: the units still
 * outstanding at `now` stay outstanding, each `interval` long now (rounded up, so never fewer). So a
 * limit changed between two calls carries over what was used, not how long it took at the old rate
 * (docs/adr/0004-exact-limits.md, "Limit changes"). Unchanged when the scale is the same or unknown
 * (an item written before intervals were kept), and when the TAT is behind `now` (nothing outstanding).
 */
export function rescaledTat(
  tat: number | undefined,
  storedInterval: number | undefined,
  interval: number,
  now: number,
): number | undefined {
  if (tat === undefined || storedInterval === undefined || storedInterval === interval || tat <= now)
    return tat;
  // Microseconds ahead times an interval can pass 2^53: exact integer arithmetic, then back to a number.
  const scaled = BigInt(tat - now) * BigInt(interval);
  const divisor = BigInt(storedInterval);
  const ahead = (scaled + divisor - 1n) / divisor;
  return now + Number(ahead < MAX_RESCALED_AHEAD ? ahead : MAX_RESCALED_AHEAD);
}

/** How long an unused limiter item lives (its TTL): it forgets its TATs then, whatever they hold. */
export const LIMITER_ITEM_TTL_SECONDS = 40 * 24 * 3600;
/** A rescaled TAT runs at most this far ahead: beyond the item's TTL it would be forgotten anyway. */
const MAX_RESCALED_AHEAD = BigInt(LIMITER_ITEM_TTL_SECONDS) * 1_000_000n;

/** Units still admissible at once after a TAT, and microseconds until the limiter is back to full. */
export function gcraState(limit: Gcra, tat: number | undefined, now: number) {
  const ahead = Math.max(0, (tat ?? now) - now);
  return { remaining: Math.max(0, Math.floor((limit.window - ahead) / limit.interval)), resetIn: ahead };
}

/** A tenant's whole limits (the tier's, overridden per tenant) and how many limiter shards share them. */
export interface TenantLimits extends Required<Limits> {
  /** Shards in use: the tenant's `limiterShards`, at most its smallest rate limit, so every shard gets >= 1. */
  shards: number;
}

/** One shard's part of a tenant's limits. */
export interface ShardLimits {
  shards: number;
  requestsPerMinute: number;
  burst: number;
  tokensPerMinute: number;
  concurrency: number;
  /** The tenant's whole monthly budget: shards share it by lending (see monthAllowance), not by a split. */
  monthlyTokens: number;
}

/** The tenant's tier; own entries only, so a tier name such as `constructor` is no tier at all. */
export function tierOf(tenant: Tenant, config: StageConfig): TierSpec {
  const tier = tierSpec(config, tenant.tier);
  if (!tier) throw new Error(`Tier '${tenant.tier}' is not configured`);
  return tier;
}

export function tenantLimits(tenant: Tenant, config: StageConfig): TenantLimits {
  const merged = { ...tierOf(tenant, config).limits, ...tenant.limits };
  const whole = { ...merged, burst: merged.burst ?? merged.requestsPerMinute };
  const smallest = Math.min(whole.requestsPerMinute, whole.burst, whole.tokensPerMinute, whole.concurrency);
  return { ...whole, shards: Math.max(1, Math.min(tenant.limiterShards ?? 1, smallest)) };
}

/**
 * Shard `shard`'s part of every rate limit: the quotient, plus one for the first `limit mod shards`
 * shards, so the parts add up to exactly the limit and (shards being capped) none is zero.
 */
export function shardLimits(whole: TenantLimits, shard: number): ShardLimits {
  const share = (limit: number) => shareOf(limit, whole.shards, shard);
  return {
    shards: whole.shards,
    requestsPerMinute: share(whole.requestsPerMinute),
    burst: share(whole.burst),
    tokensPerMinute: share(whole.tokensPerMinute),
    concurrency: share(whole.concurrency),
    monthlyTokens: whole.monthlyTokens,
  };
}

/** Shard `shard`'s part of a limit split over `shards`: the parts add up to the limit. */
export function shareOf(limit: number, shards: number, shard: number): number {
  return Math.floor(limit / shards) + (shard < limit % shards ? 1 : 0);
}

/** The most tokens one call may reserve: the smallest shard's tokens per minute, whichever shard it lands on. */
export function largestCall(whole: TenantLimits): number {
  return Math.floor(whole.tokensPerMinute / whole.shards);
}

/**
 * What a shard may charge to the month before it must borrow: shard 0 starts each month holding the
 * whole budget, the others nothing. The allowances add up to the budget for any shard count, even
 * one changed mid-month, which is what keeps the shards together within it (ADR 0004).
 */
export function monthAllowance(monthlyTokens: number, shard: number): number {
  return shard === 0 ? monthlyTokens : 0;
}

/**
 * An upper bound of a prompt's tokens for any byte-level tokenizer: never more tokens than UTF-8
 * bytes, plus a chat template's few tokens per message. Reserving an upper bound is what keeps the
 * monthly budget from ever being overshot when the actual count arrives.
 */
export function promptTokenBound(texts: readonly string[]): number {
  const TEMPLATE_TOKENS_PER_MESSAGE = 8;
  return texts.reduce((sum, text) => sum + Buffer.byteLength(text, "utf8") + TEMPLATE_TOKENS_PER_MESSAGE, 8);
}

/** The calendar month of a moment, in UTC: budgets reset at the UTC month boundary. */
export function monthOf(epochMicros: number): string {
  return new Date(Math.floor(epochMicros / 1000)).toISOString().slice(0, 7);
}

/** Microseconds from now until the next UTC month starts. */
export function untilNextMonth(epochMicros: number): number {
  const now = new Date(Math.floor(epochMicros / 1000));
  const next = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
  return next * 1000 - epochMicros;
}

/** OpenAI's duration format for x-ratelimit-reset-*: "20ms", "1s", "6m0s", "1h2m3s". */
export function formatDuration(micros: number): string {
  const ms = Math.ceil(micros / 1000);
  if (ms < 1000) return `${ms}ms`;
  const totalSeconds = Math.ceil(ms / 1000);
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds % 3600) / 60);
  const s = totalSeconds % 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}
