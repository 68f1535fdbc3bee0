import { liveLeases } from "@atrium/core/limiter-item";
import { monthOf, tenantLimits, untilNextMonth } from "@atrium/core/limits";
import { config } from "./lib/clients";
import { json } from "./lib/http";
import { limiterStoreFor } from "./lib/limiter";
import { tenantApi } from "./lib/middleware";

/** GET /v1/usage: the caller's own limits and this month's consumption, never another tenant's. */
export const handler = tenantApi(async (_event, context) => {
  const { tenant } = context;
  const nowMicros = Date.now() * 1000;
  const month = monthOf(nowMicros);
  const { shards } = tenantLimits(tenant, config);
  const snapshots = await Promise.all(
    Array.from({ length: shards }, (_, shard) => limiterStoreFor(tenant.id).read(tenant.id, shard)),
  );
  const used = snapshots.reduce((sum, s) => sum + (s.month === month ? s.monthUsed : 0), 0);
  const inFlight = snapshots.reduce((sum, s) => sum + liveLeases(s, nowMicros), 0);
  const limits = tenantLimits(tenant, config);
  return json(200, {
    object: "usage",
    tenant_id: tenant.id,
    tier: tenant.tier,
    month,
    limits: {
      requests_per_minute: limits.requestsPerMinute,
      burst: limits.burst,
      tokens_per_minute: limits.tokensPerMinute,
      concurrency: limits.concurrency,
      monthly_tokens: limits.monthlyTokens,
    },
    // Settled usage plus what calls in flight have reserved.
    tokens_used: used,
    tokens_remaining: Math.max(0, limits.monthlyTokens - used),
    in_flight: inFlight,
    resets_at: new Date(Date.now() + untilNextMonth(nowMicros) / 1000).toISOString(),
  });
});
