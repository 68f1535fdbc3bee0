/**
 * Admission control as one Lambda container runs it: reserve before the model call, settle after it.
 * The arithmetic and the DynamoDB protocol live in core (limits, limiter-store); this adds what the
 * container knows: tenants it has just seen refused (refused again without a write) and how long
 * the tenant's calls take (the wait a concurrency refusal reports).
 */
import { randomUUID } from "node:crypto";
import { CallDurations } from "@atrium/core/call-durations";
import type { StageConfig } from "@atrium/core/config";
import { invalidRequest } from "@atrium/core/errors";
import { type LimiterSnapshot, liveLeases, type Refusal, tatsFor } from "@atrium/core/limiter-item";
import type { Admission, LimiterStore } from "@atrium/core/limiter-store";
import type { Lease } from "@atrium/core/limiter-updates";
import {
  gcraAdmit,
  largestCall,
  requestGcra,
  type ShardLimits,
  shardLimits,
  shareOf,
  tenantLimits,
  tierOf,
  tokenGcra,
} from "@atrium/core/limits";
import type { Tenant } from "@atrium/core/tenant";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { type AllottedCall, createAllotments } from "./allotments";
import { atOnce, type StartUpkeep } from "./call-upkeep";
import { whenLimiterUnavailable } from "./limiter-fail-mode";
import { logger, metrics, tenantMetrics } from "./observability";
import { rateLimitHeaders, refusalError } from "./rate-limit-refusal";

/** What an admitted call holds until it settles. */
export interface Ticket {
  tenantId: string;
  /** Its own lease; absent when admitted from an allotment, or when the limiter failed open (nothing to settle). */
  lease?: Lease;
  /** Admitted from this container's allotment: settled here, without a write. */
  allotted?: AllottedCall;
  /**
   * Its slot is scarce: released before the response, so that the client's next call cannot meet it
   * still held. It took the tenant's last slot, or it runs on a contended endpoint, where each
   * tenant's calls in flight are capped by its share (a client at its share calling back to back).
   */
  tight?: boolean;
  /** A stream admitted on a slot: aborted if it could not take a lease of its own in time. */
  streamEnds?: AbortSignal;
  reserved: number;
  /** Microseconds since the epoch: the call's duration is measured from here. */
  admittedAt: number;
}

/**
 * A buffered call's lease outlives the longest one (API Gateway's 29 s) with margin; then a crashed
 * holder's slot frees. A streamed call asks for a lease as long as its function may run.
 */
export const LEASE_MICROS = 60_000_000;

export interface AdmissionDeps {
  /** The limiter store a tenant's calls go through (deployed: with that tenant's scoped credentials). */
  storeFor: (tenantId: string) => LimiterStore;
  config: StageConfig;
  /** Microseconds since the epoch; injectable for tests. */
  now?: () => number;
  /** When an allotment's renewal found due at an admission starts (allotments.ts); at once by default. */
  startRenewal?: StartUpkeep;
}

export function createAdmission({
  storeFor,
  config: stage,
  now = () => Date.now() * 1000,
  startRenewal = atOnce,
}: AdmissionDeps) {
  // Per container and shard: the item as a refusal showed it, until that refusal's wait is over.
  const refused = new Map<string, { until: number; snapshot: LimiterSnapshot }>();
  // Tenants refused by a write since their last admission here: a take would be refused too, so their
  // calls are admitted one by one until one gets through.
  const limited = new Map<string, true>();
  const durations = new CallDurations();
  const allotments = createAllotments({
    storeFor,
    callLeaseMicros: LEASE_MICROS,
    now,
    startRenewal,
  });

  /**
   * Reserves `tokens` (the bound set by length field `field`, if one did) or throws the refusal.
   * `endpoint`: a shared endpoint with a capacity, and the tenant's fair share of it while it is
   * contended (docs/adr/0012-fair-share.md); a sharded tenant's shards split the share.
   */
  async function admit(
    tenant: Tenant,
    tokens: number,
    field: string | null = null,
    leaseMicros = LEASE_MICROS,
    endpoint?: { name: string; share?: number },
  ): Promise<{ ticket: Ticket; headers: Record<string, string> }> {
    const whole = tenantLimits(tenant, stage);
    if (tokens > largestCall(whole)) {
      throw invalidRequest(
        "request_exceeds_token_limit",
        `This request may use up to ${tokens} tokens (prompt plus output bound), more than the ${largestCall(whole)} tokens per minute one call may use for this tenant. Lower max_tokens or shorten the prompt.`,
        field,
      );
    }
    const at = now();
    const limitsOf = (shard: number) => shardLimits(whole, shard);
    const allotted = limited.has(tenant.id)
      ? undefined
      : await allotments.admit(tenant.id, whole, limitsOf, tokens, endpoint, at);
    if (allotted) {
      metrics.addMetric("AdmittedLocally", MetricUnit.Count, 1);
      const { call } = allotted;
      const ticket: Ticket = { tenantId: tenant.id, reserved: tokens, admittedAt: at, allotted: call };
      // A stream may outlive its slot's lease: it then moves to one as long as `leaseMicros`.
      if (leaseMicros > LEASE_MICROS) ticket.streamEnds = allotments.keepForStream(call, leaseMicros);
      return { ticket, headers: rateLimitHeaders(allotted.limits, whole, allotted.snapshot, at) };
    }
    const shard = whole.shards > 1 ? Math.floor(Math.random() * whole.shards) : 0;
    const limits = shardLimits(whole, shard);
    const key = `${tenant.id}#${shard}`;
    const local = localRefusal(refused.get(key), limits, tokens, at);
    if (local) {
      metrics.addMetric("LimitedLocally", MetricUnit.Count, 1);
      tenantMetrics.addMetric("RateLimited", MetricUnit.Count, 1);
      throw refusalError({
        refusal: local.refusal,
        tokens,
        shard: limits,
        whole,
        snapshot: local.snapshot,
        now: at,
      });
    }

    const ticket: Ticket = { tenantId: tenant.id, reserved: tokens, admittedAt: at };
    let admission: Admission;
    try {
      admission = await storeFor(tenant.id).admit({
        tenantId: tenant.id,
        shard,
        limits,
        now: at,
        tokens,
        leaseId: randomUUID(),
        leaseMicros,
        typicalCallMicros: durations.typical(tenant.id),
        ...(endpoint ? { endpoint: shardEndpoint(endpoint, limits.shards, shard) } : {}),
      });
    } catch (err) {
      whenLimiterUnavailable(tierOf(tenant, stage), err);
      return { ticket, headers: {} };
    }
    metrics.addMetric("LimiterWrites", MetricUnit.Count, admission.writes);
    if (!admission.admitted) {
      remember(limited, tenant.id, true);
      const { snapshot, ...refusal } = admission;
      if (refusal.reason === "requests" || refusal.reason === "tokens") {
        remember(refused, key, { until: at + refusal.retryAfter, snapshot });
      }
      tenantMetrics.addMetric("RateLimited", MetricUnit.Count, 1);
      logger.info("call refused by limits", {
        reason: refusal.reason,
        retryAfterMs: Math.ceil(refusal.retryAfter / 1000),
      });
      throw refusalError({ refusal, tokens, shard: limits, whole, snapshot, now: at });
    }
    refused.delete(key);
    limited.delete(tenant.id);
    return {
      ticket: {
        ...ticket,
        lease: admission.lease,
        tight: scarceSlot(admission.snapshot, limits, at, endpoint),
      },
      headers: rateLimitHeaders(limits, whole, admission.snapshot, at),
    };
  }

  /**
   * Replaces the reservation with what was used, never more than was reserved: a reply reporting
   * more is charged the reservation and counted. Never fails the call: an unsettled lease expires.
   * False when the lease was gone (the tenant erased, or already settled): then nothing is recorded.
   */
  async function settle(ticket: Ticket, usedTokens: number): Promise<boolean> {
    noteSettled(ticket, usedTokens);
    const at = now();
    // Admitted without a lease (the limiter failed open): nothing to settle, the call still happened.
    if (!ticket.lease) return true;
    try {
      const { writes, settled } = await storeFor(ticket.tenantId).settle(ticket.lease, usedTokens, at);
      metrics.addMetric("LimiterWrites", MetricUnit.Count, writes);
      if (!settled)
        logger.info("the lease was no longer held (tenant erased, or already settled); nothing settled");
      return settled;
    } catch (err) {
      metrics.addMetric("LimiterSettleFailed", MetricUnit.Count, 1);
      logger.error("limiter settle failed; the lease will expire", { error: (err as Error).name });
      // The reservation stays charged until the lease expires: the call is recorded at what it used.
      return true;
    }
  }

  function noteSettled(ticket: Ticket, usedTokens: number): void {
    durations.record(ticket.tenantId, now() - ticket.admittedAt);
    if (usedTokens > ticket.reserved) {
      metrics.addMetric("UsageAboveReservation", MetricUnit.Count, 1);
      logger.warn("the model reported more tokens than were reserved; the reservation is charged", {
        reserved: ticket.reserved,
        reported: usedTokens,
      });
    }
  }

  /**
   * Settles a call admitted from an allotment, here and at once (no write): its slot and unused
   * tokens serve the next calls. Returns the upkeep to run off the call's path (ADR 0004, Allotments).
   */
  function settleAllotted(ticket: Ticket & { allotted: AllottedCall }, usedTokens: number) {
    noteSettled(ticket, usedTokens);
    return allotments.settle(ticket.allotted, ticket.reserved, usedTokens);
  }

  return { admit, settle, settleAllotted };
}

/** Tenants (or shards) a container remembers a refusal of; the oldest are forgotten beyond this. */
const MAX_REMEMBERED = 1000;

/** Sets `key`, newest last, forgetting the oldest entries beyond MAX_REMEMBERED (a forgotten refusal only costs a write). */
function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
  for (const oldest of map.keys()) {
    if (map.size <= MAX_REMEMBERED) return;
    map.delete(oldest);
  }
}

/** Whether this admission's slot is scarce (see Ticket.tight): the shard's last, or one on a contended endpoint. */
function scarceSlot(
  snapshot: LimiterSnapshot,
  limits: ShardLimits,
  at: number,
  endpoint: { name: string; share?: number } | undefined,
): boolean {
  return liveLeases(snapshot, at) >= limits.concurrency || endpoint?.share !== undefined;
}

/**
 * A shard's part of the tenant's fair share, at least 1: a share smaller than the shard count would
 * otherwise refuse every call landing on the shards without a part (ADR 0012 bounds the excess).
 */
function shardEndpoint(endpoint: { name: string; share?: number }, shards: number, shard: number) {
  if (endpoint.share === undefined || shards === 1) return endpoint;
  return { name: endpoint.name, share: Math.max(1, shareOf(endpoint.share, shards, shard)) };
}

/**
 * A refusal this container can give without a write: the item, as a recent refusal showed it, still
 * refuses this call by GCRA (a request TAT only grows; a token TAT shrinks only by refunds, which
 * can at worst make this refusal early), named for the limit that refuses it.
 */
function localRefusal(
  known: { until: number; snapshot: LimiterSnapshot } | undefined,
  limits: ShardLimits,
  tokens: number,
  at: number,
): { refusal: Refusal; snapshot: LimiterSnapshot } | undefined {
  if (!known || at >= known.until) return undefined;
  const { snapshot } = known;
  const tats = tatsFor(snapshot, limits, at);
  const requests = gcraAdmit(requestGcra(limits), tats.requestTat, at, 1);
  if (!requests.allowed)
    return { refusal: { reason: "requests", retryAfter: requests.retryAfter }, snapshot };
  const tokenDecision = gcraAdmit(tokenGcra(limits), tats.tokenTat, at, tokens);
  if (!tokenDecision.allowed) {
    return { refusal: { reason: "tokens", retryAfter: tokenDecision.retryAfter }, snapshot };
  }
  return undefined;
}
