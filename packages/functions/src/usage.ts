import { liveLeases } from "@atrium/core/limiter-item";
import { monthOf, tenantLimits, untilNextMonth } from "@atrium/core/limits";
import { UsageTable } from "@atrium/core/tables";
import { BUCKET_PARAMETERS, ledgerHours, parseBucketQuery, usageBuckets } from "@atrium/core/usage-buckets";
import { readLedger } from "@atrium/core/usage-ledger";
import { config, requireEnv } from "./lib/clients";
import { json } from "./lib/http";
import { limiterStoreFor } from "./lib/limiter";
import { tenantApi } from "./lib/middleware";
import { tenantClients } from "./lib/tenant-clients";

const usageTable = requireEnv(UsageTable.env);

/**
 * GET /v1/usage: the caller's own limits and this month's consumption; with `start` (and `end`,
 * `bucket=day|hour`, `group_by=model`), its usage in time buckets from the ledger. Never another
 * tenant's: the ledger is read in the caller's partition only, as the caller (docs/adr/0006).
 */
export const handler = tenantApi(async (event, context) => {
  const { tenant } = context;
  const params = event.queryStringParameters ?? {};
  if (BUCKET_PARAMETERS.some((name) => params[name] !== undefined)) {
    const query = parseBucketQuery(params, Math.floor(Date.now() / 1000));
    const { from, to } = ledgerHours(query);
    const entries = await readLedger(tenantClients(tenant.id).dynamo, usageTable, tenant.id, from, to);
    return json(200, usageBuckets(entries, query));
  }
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
    // Settled usage plus what calls in flight have reserved and busy containers hold (ADR 0004, Allotments);
    // `in_flight` counts slots: calls in flight, and the slots those containers keep for their next calls.
    tokens_used: used,
    tokens_remaining: Math.max(0, limits.monthlyTokens - used),
    in_flight: inFlight,
    resets_at: new Date(Date.now() + untilNextMonth(nowMicros) / 1000).toISOString(),
  });
});
