/**
 * The limit arithmetic, free of I/O: GCRA for requests and tokens in integer microseconds, the
 * effective limits of a tenant (tier defaults, overrides, shards) and the size of a reservation.
 * docs/adr/0004-exact-limits.md explains the algorithm and why it is exact.
 */
import { type Limits, type StageConfig, type TierSpec, tierSpec } from "./config";
import { invalidRequest } from "./errors";
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

export interface GcraDecision {
  allowed: boolean;
  /** The TAT after admitting (when allowed). */
  tat: number;
  /** When refused: microseconds until this cost could be admitted. */
  retryAfter: number;
}

/** Admit `cost` units at `now` against a stored TAT (undefined for a fresh limiter). */
export function gcraAdmit(
  limit: Gcra,
  storedTat: number | undefined,
  now: number,
  cost: number,
): GcraDecision {
  const base = Math.max(storedTat ?? now, now);
  const tat = base + cost * limit.interval;
  const over = tat - now - limit.window;
  return over <= 0 ? { allowed: true, tat, retryAfter: 0 } : { allowed: false, tat: base, retryAfter: over };
}

/** Units still admissible at once after a TAT, and microseconds until the limiter is back to full. */
export function gcraState(limit: Gcra, tat: number | undefined, now: number) {
  const ahead = Math.max(0, (tat ?? now) - now);
  return { remaining: Math.max(0, Math.floor((limit.window - ahead) / limit.interval)), resetIn: ahead };
}

/** A tenant's limits for one limiter shard: the tier's, overridden per tenant, divided over shards. */
export interface ShardLimits extends Required<Limits> {
  shards: number;
}

export function effectiveLimits(tenant: Tenant, config: StageConfig): ShardLimits {
  const whole = tenantLimits(tenant, config);
  const shards = Math.max(1, tenant.limiterShards ?? 1);
  // Each shard gets the floor of its share, so the shards together never admit more than the limit.
  const share = (n: number) => Math.max(1, Math.floor(n / shards));
  return {
    shards,
    requestsPerMinute: share(whole.requestsPerMinute),
    burst: share(whole.burst),
    tokensPerMinute: share(whole.tokensPerMinute),
    concurrency: share(whole.concurrency),
    monthlyTokens: share(whole.monthlyTokens),
  };
}

/** Whole-tenant limits (before the split over shards): the tier's, overridden per tenant. */
export function tenantLimits(tenant: Tenant, config: StageConfig): Required<Limits> {
  const tier = tierSpec(config, tenant.tier);
  if (!tier) throw new Error(`Tier '${tenant.tier}' is not configured`);
  const merged = { ...tier.limits, ...tenant.limits };
  return { ...merged, burst: merged.burst ?? merged.requestsPerMinute };
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

/** max_tokens for a call: the tier's default when the request sets none; a 400 above the tier's cap. */
export function maxTokensFor(requested: number | undefined, tier: TierSpec | undefined): number {
  if (!tier) return requested ?? 0;
  if (requested !== undefined && requested > tier.maxTokens.cap) {
    throw invalidRequest(
      "max_tokens_too_large",
      `max_tokens: ${requested} is above this tier's cap of ${tier.maxTokens.cap}`,
      "max_tokens",
    );
  }
  return requested ?? tier.maxTokens.default;
}
