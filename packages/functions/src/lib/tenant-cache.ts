import { getProfile } from "@atrium/core/profiles";
import type { Tenant } from "@atrium/core/tenant";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { isAwsUnavailable } from "./aws-unavailable";
import { config, tenantTable } from "./clients";
import { logger, metrics } from "./observability";

interface Entry {
  tenant: Tenant;
  expiresAt: number;
}

// Per-container cache: a warm Lambda reads a tenant's profile at most once per TTL.
const entries = new Map<string, Entry>();
const MAX_ENTRIES = 10_000;

/**
 * How long past its TTL a profile may still be served while DynamoDB is unavailable
 * (docs/adr/0007-timeouts.md). Only calls API Gateway let through reach this: with DynamoDB down, a key
 * whose authorizer decision is not cached is refused before, so in practice the authorizer cache's TTL
 * bounds it first.
 */
export const STALE_IF_UNAVAILABLE_MS = 5 * 60_000;

/**
 * The tenant's profile, from this container's cache while fresh. "Not found" is never cached: a tenant
 * created a moment ago (or not yet visible to this read) is looked up again on its next call.
 */
export async function loadTenant(tenantId: string, now = Date.now()): Promise<Tenant | undefined> {
  const cached = entries.get(tenantId);
  if (cached && cached.expiresAt > now) return cached.tenant;
  let tenant: Tenant | undefined;
  try {
    tenant = (await getProfile(tenantTable, tenantId))?.tenant;
  } catch (err) {
    if (cached && now < cached.expiresAt + STALE_IF_UNAVAILABLE_MS && isAwsUnavailable(err)) {
      metrics.addMetric("TenantProfileServedStale", MetricUnit.Count, 1);
      logger.warn("tenant store unavailable; serving the cached profile", {
        error: (err as Error).name,
        staleMs: now - cached.expiresAt,
      });
      return cached.tenant;
    }
    throw err;
  }
  if (!tenant) {
    entries.delete(tenantId);
    return undefined;
  }
  if (entries.size >= MAX_ENTRIES) entries.clear();
  entries.set(tenantId, { tenant, expiresAt: now + config.tenantCacheTtlSeconds * 1000 });
  return tenant;
}

/** Drops a tenant's entry so the next call in this container reads the store again. */
export function forgetTenant(tenantId: string): void {
  entries.delete(tenantId);
}
