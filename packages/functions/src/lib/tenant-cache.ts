import type { Tenant } from "@atrium/core/tenant";
import { config, tenantStore } from "./clients";

interface Entry {
  tenant: Tenant | undefined;
  expiresAt: number;
}

// Per-container cache: a warm Lambda reads a tenant's profile at most once per TTL.
const entries = new Map<string, Entry>();
const MAX_ENTRIES = 10_000;

export async function loadTenant(tenantId: string, now = Date.now()): Promise<Tenant | undefined> {
  const cached = entries.get(tenantId);
  if (cached && cached.expiresAt > now) return cached.tenant;
  const tenant = await tenantStore.get(tenantId);
  if (entries.size >= MAX_ENTRIES) entries.clear();
  entries.set(tenantId, { tenant, expiresAt: now + config.tenantCacheTtlSeconds * 1000 });
  return tenant;
}

/** Drops a tenant's entry so the next call in this container reads the store again. */
export function forgetTenant(tenantId: string): void {
  entries.delete(tenantId);
}
