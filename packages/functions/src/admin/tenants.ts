import {
  createTenant,
  deleteTenant,
  resumeTenant,
  suspendTenant,
  updateTenant,
} from "@atrium/core/admin/tenants";
import { pageLimit } from "@atrium/core/cursor";
import { EndpointStateStore } from "@atrium/core/endpoint-state-store";
import { eraseTenant } from "@atrium/core/erase";
import { invalidRequest } from "@atrium/core/errors";
import { requireProfile } from "@atrium/core/profiles";
import { EndpointTable, IdempotencyTable, LimiterTable, UsageTable } from "@atrium/core/tables";
import { listTenants } from "@atrium/core/tenant-directory";
import { actorOf, adminTable, noBody, queryParam, tenantIdParam } from "../lib/admin";
import { adminApi } from "../lib/admin-api";
import { config, documentClient } from "../lib/clients";
import { json, parseJsonBody } from "../lib/http";
import { idempotency } from "../lib/idempotency";
import { logger } from "../lib/observability";
import { propagateAccessChange, propagateProfileChange } from "../lib/propagation";

/** POST /admin/tenants: a tenant and its first API key in one call; the key's plaintext is returned once. */
export const create = adminApi(
  async (event) => {
    const actor = actorOf(event);
    const { tenant, key } = await createTenant(adminTable, config, actor, parseJsonBody(event));
    logger.info("tenant created", { tenantId: tenant.id, tier: tenant.tier, keyId: key.keyId });
    return json(201, { tenant, apiKey: key.plaintext, key: { keyId: key.keyId, hint: key.hint } });
  },
  { idempotency: idempotency() },
);

/** GET /admin/tenants?limit=&cursor=: tenants a page at a time. */
export const list = adminApi(async (event) => {
  const limit = pageLimit(queryParam(event, "limit"), 100, 1000);
  const cursor = queryParam(event, "cursor");
  return json(200, await listTenants(adminTable, { limit, ...(cursor ? { cursor } : {}) }));
});

/** GET /admin/tenants/{tenantId} */
export const get = adminApi(async (event) => {
  const { tenant } = await requireProfile(adminTable, tenantIdParam(event));
  return json(200, { tenant });
});

/** PATCH /admin/tenants/{tenantId}: tier, limits, allowed models, compliance, regions, name. */
export const update = adminApi(async (event) => {
  const actor = actorOf(event);
  const tenantId = tenantIdParam(event);
  const { tenant, changes } = await updateTenant(adminTable, config, actor, tenantId, parseJsonBody(event));
  // Nothing changed: nothing to propagate, and the call stays safe to repeat.
  if (Object.keys(changes).length === 0) return json(200, { tenant, changes });
  // The authorizer passes the tier on, so a tier change renews its cached decisions too.
  const propagation = await propagateProfileChange(tenantId, "tier" in changes);
  logger.info("tenant updated", { tenantId, fields: Object.keys(changes) });
  return json(200, { tenant, changes, propagation });
});

/** POST /admin/tenants/{tenantId}/suspend: every key of the tenant is refused (403) from the next call. */
export const suspend = adminApi(async (event) => {
  const actor = actorOf(event);
  const tenantId = tenantIdParam(event);
  noBody(event);
  const { tenant, changes } = await suspendTenant(adminTable, actor, tenantId);
  const propagation = await propagateAccessChange(tenantId);
  logger.info("tenant suspended", { tenantId });
  return json(200, { tenant, changes, propagation });
});

/** POST /admin/tenants/{tenantId}/resume: resumption renews a cached Deny too. */
export const resume = adminApi(async (event) => {
  const actor = actorOf(event);
  const tenantId = tenantIdParam(event);
  noBody(event);
  const { tenant, changes } = await resumeTenant(adminTable, actor, tenantId);
  const propagation = await propagateProfileChange(tenantId, true);
  logger.info("tenant active", { tenantId });
  return json(200, { tenant, changes, propagation });
});

/**
 * DELETE /admin/tenants/{tenantId}[?erase=true]. Without erase: keys revoked, endpoints released,
 * the data kept. With erase (GDPR): every item of the tenant in every table goes but the erase record.
 */
export const remove = adminApi(async (event) => {
  const actor = actorOf(event);
  const tenantId = tenantIdParam(event);
  noBody(event);
  const erase = queryParam(event, "erase");
  if (erase !== undefined && erase !== "true" && erase !== "false") {
    throw invalidRequest("invalid_erase", "erase: true or false", "erase");
  }
  if (erase === "true") {
    const partitions = [LimiterTable.env, IdempotencyTable.env, UsageTable.env]
      .map((name) => process.env[name])
      .filter((tableName): tableName is string => Boolean(tableName))
      .map((tableName) => ({ db: documentClient, tableName }));
    const { erased, record } = await eraseTenant(adminTable, actor, tenantId, partitions);
    await forgetOnSharedEndpoints(tenantId);
    const propagation = await propagateAccessChange(tenantId);
    logger.info("tenant erased", { tenantId, items: erased });
    return json(200, { tenantId, erased: true, itemsDeleted: erased, audit: record, propagation });
  }
  const { tenant, changes } = await deleteTenant(adminTable, actor, tenantId);
  const propagation = await propagateAccessChange(tenantId);
  logger.info("tenant deleted", { tenantId });
  return json(200, { tenant, changes, propagation });
});

/** The endpoints' lists of their active tenants (docs/adr/0012) name the tenant: an erase removes it. */
async function forgetOnSharedEndpoints(tenantId: string): Promise<void> {
  const tableName = process.env[EndpointTable.env];
  if (!tableName) return;
  const store = new EndpointStateStore(documentClient, tableName);
  for (const endpoint of config.sharedEndpoints) await store.forget(endpoint.endpointName, tenantId);
}
