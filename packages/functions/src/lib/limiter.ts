/**
 * Admission control for tenant calls: reserve before the model call, settle after it, refund on
 * error. The arithmetic and the DynamoDB protocol live in core (limits, limiter-store); this module
 * adds the Lambda's side: OpenAI's rate-limit headers and 429s, the fail-open/closed choice, and
 * refusing locally while a tenant is known to be limited.
 */
import { randomUUID } from "node:crypto";
import { type StageConfig, tierSpec } from "@atrium/core/config";
import { AtriumError, invalidRequest } from "@atrium/core/errors";
import { type Admission, type Lease, type LimiterSnapshot, LimiterStore } from "@atrium/core/limiter-store";
import {
  effectiveLimits,
  formatDuration,
  gcra,
  gcraState,
  type ShardLimits,
  tenantLimits,
} from "@atrium/core/limits";
import { LimiterTable } from "@atrium/core/tables";
import type { Tenant } from "@atrium/core/tenant";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import type { MiddlewareObj } from "@middy/core";
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from "aws-lambda";
import { config, requireEnv } from "./clients";
import type { TenantContext } from "./middleware";
import { logger, metrics } from "./observability";
import { tenantClients } from "./tenant-clients";

/** What an admitted call holds until it settles. */
export interface Ticket {
  /** Absent when the limiter failed open: nothing to settle. */
  lease?: Lease;
  reserved: number;
}

/** A lease outlives the longest call (API Gateway's 29 s) with margin; then a crashed holder's slot frees. */
const LEASE_MICROS = 60_000_000;

export interface LimiterDeps {
  /** The limiter store a tenant's calls go through (deployed: with that tenant's scoped credentials). */
  storeFor: (tenantId: string) => LimiterStore;
  config: StageConfig;
  /** Microseconds since the epoch; injectable for tests. */
  now?: () => number;
}

export function createLimiter({ storeFor, config: stage, now = () => Date.now() * 1000 }: LimiterDeps) {
  // Per container: tenants known to be refused until a moment, so they are refused without a write.
  const blocked = new Map<string, { until: number; minTokens: number; snapshot: LimiterSnapshot }>();

  async function admit(
    tenant: Tenant,
    tokens: number,
  ): Promise<{ ticket: Ticket; headers: Record<string, string> }> {
    const limits = effectiveLimits(tenant, stage);
    const whole = tenantLimits(tenant, stage);
    const tokenLimit = gcra(limits.tokensPerMinute);
    if (tokens * tokenLimit.interval > tokenLimit.window) {
      throw invalidRequest(
        "request_exceeds_token_limit",
        `This request may use up to ${tokens} tokens (prompt plus max_tokens), more than this tenant's ${whole.tokensPerMinute} tokens per minute. Lower max_tokens or shorten the prompt.`,
        "max_tokens",
      );
    }
    const shard = limits.shards > 1 ? Math.floor(Math.random() * limits.shards) : 0;
    const key = `${tenant.id}#${shard}`;
    const at = now();
    const known = blocked.get(key);
    if (known && at < known.until && tokens >= known.minTokens) {
      metrics.addMetric("LimitedLocally", MetricUnit.Count, 1);
      throw refusal("requests", known.until - at, limits, whole, known.snapshot, at);
    }

    let admission: Admission;
    try {
      admission = await storeFor(tenant.id).admit({
        tenantId: tenant.id,
        shard,
        limits,
        now: at,
        tokens,
        leaseId: randomUUID(),
        leaseMicros: LEASE_MICROS,
      });
    } catch (err) {
      return failMode(tenant, err, tokens);
    }
    metrics.addMetric("LimiterWrites", MetricUnit.Count, admission.writes);
    if (!admission.admitted) {
      const { reason, retryAfter, snapshot } = admission;
      if (reason === "requests" || reason === "tokens") {
        blocked.set(key, { until: at + retryAfter, minTokens: reason === "requests" ? 0 : tokens, snapshot });
      }
      metrics.addMetric("RateLimited", MetricUnit.Count, 1);
      logger.info("call refused by limits", { reason, retryAfterMs: Math.ceil(retryAfter / 1000) });
      throw refusal(reason, retryAfter, limits, whole, snapshot, at);
    }
    blocked.delete(key);
    return {
      ticket: { lease: admission.lease, reserved: tokens },
      headers: rateLimitHeaders(limits, whole, admission.snapshot, at),
    };
  }

  function failMode(tenant: Tenant, err: unknown, tokens: number) {
    const mode = tierSpec(stage, tenant.tier)?.limiterFailMode ?? "closed";
    logger.error("limiter unavailable", { failMode: mode, error: (err as Error).name });
    if (mode === "closed") {
      throw new AtriumError(
        503,
        "api_error",
        "limiter_unavailable",
        "Usage limits cannot be checked right now, so the call was not made. Retry shortly.",
      );
    }
    metrics.addMetric("LimiterFailOpen", MetricUnit.Count, 1);
    return { ticket: { reserved: tokens }, headers: {} };
  }

  /** Replaces the reservation with what was used. Never fails the call: an unsettled lease expires. */
  async function settle(ticket: Ticket, usedTokens: number): Promise<void> {
    if (!ticket.lease) return;
    try {
      const { writes } = await storeFor(ticket.lease.tenantId).settle(ticket.lease, usedTokens, now());
      metrics.addMetric("LimiterWrites", MetricUnit.Count, writes);
    } catch (err) {
      metrics.addMetric("LimiterSettleFailed", MetricUnit.Count, 1);
      logger.error("limiter settle failed; the lease will expire", { error: (err as Error).name });
    }
  }

  return { admit, settle };
}

function refusal(
  reason: string,
  retryAfterMicros: number,
  limits: ShardLimits,
  whole: ReturnType<typeof tenantLimits>,
  snapshot: LimiterSnapshot,
  now: number,
): AtriumError {
  const ms = Math.max(1, Math.ceil(retryAfterMicros / 1000));
  const wait = formatDuration(retryAfterMicros);
  const err =
    reason === "monthly_budget"
      ? new AtriumError(
          429,
          "insufficient_quota",
          "insufficient_quota",
          `This tenant's monthly budget of ${whole.monthlyTokens} tokens is used up; it renews at the start of next month (UTC).`,
        )
      : new AtriumError(
          429,
          reason === "tokens" ? "tokens" : "requests",
          "rate_limit_exceeded",
          refusalMessage(reason, whole, wait),
        );
  err.headers = {
    ...rateLimitHeaders(limits, whole, snapshot, now),
    "retry-after": String(Math.ceil(ms / 1000)),
    "retry-after-ms": String(ms),
    // Retrying cannot help a spent budget; OpenAI's clients honour this header.
    ...(reason === "monthly_budget" ? { "x-should-retry": "false" } : {}),
  };
  return err;
}

function refusalMessage(reason: string, whole: ReturnType<typeof tenantLimits>, wait: string): string {
  switch (reason) {
    case "tokens":
      return `Rate limit reached for tokens per minute (TPM): limit ${whole.tokensPerMinute}. Please try again in ${wait}.`;
    case "concurrency":
      return `Too many calls in flight at once: limit ${whole.concurrency}. Please try again in ${wait}.`;
    case "contention":
      return `The rate limiter is busy for this tenant. Please try again in ${wait}.`;
    default:
      return `Rate limit reached for requests per minute (RPM): limit ${whole.requestsPerMinute}. Please try again in ${wait}.`;
  }
}

/** OpenAI's x-ratelimit-* headers, from the limiter item as this admission left it. */
export function rateLimitHeaders(
  limits: ShardLimits,
  whole: ReturnType<typeof tenantLimits>,
  snapshot: LimiterSnapshot,
  now: number,
): Record<string, string> {
  const requests = gcraState(gcra(limits.requestsPerMinute, limits.burst), snapshot.requestTat, now);
  const tokens = gcraState(gcra(limits.tokensPerMinute), snapshot.tokenTat, now);
  return {
    "x-ratelimit-limit-requests": String(whole.requestsPerMinute),
    "x-ratelimit-remaining-requests": String(requests.remaining * limits.shards),
    "x-ratelimit-reset-requests": formatDuration(requests.resetIn),
    "x-ratelimit-limit-tokens": String(whole.tokensPerMinute),
    "x-ratelimit-remaining-tokens": String(tokens.remaining * limits.shards),
    "x-ratelimit-reset-tokens": formatDuration(tokens.resetIn),
  };
}

const limiterTable = requireEnv(LimiterTable.env);
const stores = new Map<string, LimiterStore>();

/**
 * One store per tenant in this container: its DynamoDB client runs as the tenant (IAM leading keys
 * limit it to the tenant's own limiter items), and its prediction cache is the tenant's.
 */
export function limiterStoreFor(tenantId: string): LimiterStore {
  const dynamo = tenantClients(tenantId).dynamo;
  let store = stores.get(tenantId);
  if (!store || store.client !== dynamo) {
    store = new LimiterStore(dynamo, limiterTable);
    stores.set(tenantId, store);
  }
  return store;
}

export const limiter = createLimiter({ storeFor: limiterStoreFor, config });

/** Reserves `tokens` for the caller's call; the `limits` middleware settles or refunds it. */
export async function admitCall(context: TenantContext, tokens: number): Promise<void> {
  const { ticket, headers } = await limiter.admit(context.tenant, tokens);
  context.ticket = ticket;
  Object.assign(context.responseHeaders, headers);
}

/** Settles after the handler (actual usage) or refunds on error (usage 0, or what the model reported). */
export function limits(): MiddlewareObj<APIGatewayProxyEvent, APIGatewayProxyResult, Error, TenantContext> {
  const settle = async (context: TenantContext, fallback: (ticket: Ticket) => number) => {
    const ticket = context.ticket;
    if (!ticket) return;
    context.ticket = undefined;
    await limiter.settle(ticket, context.usedTokens ?? fallback(ticket));
  };
  return {
    // Without a usage report the reservation is what is charged: never less than was possibly used.
    after: (request) => settle(request.context, (ticket) => ticket.reserved),
    onError: (request) => settle(request.context, () => 0),
  };
}
