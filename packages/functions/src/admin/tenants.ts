import { generateApiKey } from "@atrium/core/api-key";
import { changesBetween } from "@atrium/core/audit";
import { pageLimit } from "@atrium/core/cursor";
import { eraseTenant } from "@atrium/core/erase";
import { conflict, invalidRequest } from "@atrium/core/errors";
import { LimiterTable } from "@atrium/core/tables";
import { newTenant, type TenantStatus, UPDATABLE_FIELDS, updatedTenant } from "@atrium/core/tenant";
import type { APIGatewayProxyEvent } from "aws-lambda";
import { actorOf, auditLog, noBody, queryParam, requireTenant, tenantIdParam } from "../lib/admin";
import { config, documentClient, tenantStore } from "../lib/clients";
import { json, parseJsonBody } from "../lib/http";
import { adminApi } from "../lib/middleware";
import { logger } from "../lib/observability";
import { propagateAccessChange, propagateProfileChange } from "../lib/propagation";

/** POST /admin/tenants: a tenant and its first API key in one call; the key's plaintext is returned once. */
export const create = adminApi(async (event) => {
  const actor = actorOf(event);
  const tenant = newTenant(parseJsonBody(event), config);
  const key = generateApiKey();
  await tenantStore.create(tenant, key);
  await auditLog.append({
    tenantId: tenant.id,
    actor,
    action: "tenant.create",
    target: tenant.id,
    changes: {
      ...changesBetween(undefined, tenant, ["status", ...UPDATABLE_FIELDS]),
      key: { to: key.keyId },
    },
  });
  logger.info("tenant created", { tenantId: tenant.id, tier: tenant.tier, keyId: key.keyId });
  return json(201, { tenant, apiKey: key.plaintext, key: { keyId: key.keyId, hint: key.hint } });
});

/** GET /admin/tenants?limit=&cursor=: tenants a page at a time. */
export const list = adminApi(async (event) => {
  const limit = pageLimit(queryParam(event, "limit"), 100, 1000);
  const cursor = queryParam(event, "cursor");
  return json(200, await tenantStore.list({ limit, ...(cursor ? { cursor } : {}) }));
});

/** GET /admin/tenants/{tenantId} */
export const get = adminApi(async (event) => {
  const { tenant } = await requireTenant(tenantIdParam(event));
  return json(200, { tenant });
});

/** PATCH /admin/tenants/{tenantId}: tier, limits, allowed models, compliance, regions, name. */
export const update = adminApi(async (event) => {
  const actor = actorOf(event);
  const tenantId = tenantIdParam(event);
  const { tenant, version } = await requireTenant(tenantId);
  const next = updatedTenant(tenant, parseJsonBody(event), config);
  const changes = changesBetween(tenant, next, UPDATABLE_FIELDS);
  // Nothing to change: nothing written, nothing audited, and the call stays safe to repeat.
  if (Object.keys(changes).length === 0) return json(200, { tenant, changes });
  await tenantStore.update(next, version);
  await auditLog.append({ tenantId, actor, action: "tenant.update", target: tenantId, changes });
  // The authorizer passes the tier on, so a tier change renews its cached decisions too.
  const propagation = await propagateProfileChange(tenantId, "tier" in changes);
  logger.info("tenant updated", { tenantId, fields: Object.keys(changes) });
  return json(200, { tenant: next, changes, propagation });
});

async function transition(event: APIGatewayProxyEvent, from: TenantStatus, to: TenantStatus) {
  const actor = actorOf(event);
  const tenantId = tenantIdParam(event);
  noBody(event);
  const { tenant } = await requireTenant(tenantId);
  if (tenant.status !== from) {
    throw conflict(
      `tenant_${tenant.status}`,
      `tenant ${tenantId} is ${tenant.status}, not ${from}`,
      "tenantId",
    );
  }
  await tenantStore.transitionStatus(tenantId, from, to);
  const action = to === "suspended" ? "tenant.suspend" : "tenant.resume";
  const changes = { status: { from, to } };
  await auditLog.append({ tenantId, actor, action, target: tenantId, changes });
  // Suspension is an access change (the authorizer denies); resumption renews a cached Deny.
  const propagation =
    to === "suspended" ? await propagateAccessChange(tenantId) : await propagateProfileChange(tenantId, true);
  logger.info(`tenant ${to}`, { tenantId });
  return json(200, { tenant: { ...tenant, status: to }, changes, propagation });
}

/** POST /admin/tenants/{tenantId}/suspend: every key of the tenant is refused (403) from the next call. */
export const suspend = adminApi((event) => transition(event, "active", "suspended"));

/** POST /admin/tenants/{tenantId}/resume */
export const resume = adminApi((event) => transition(event, "suspended", "active"));

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
    const limiterTable = process.env[LimiterTable.env];
    const partitions = limiterTable ? [{ db: documentClient, tableName: limiterTable }] : [];
    const { erased, record } = await eraseTenant(
      { store: tenantStore, audit: auditLog, partitions },
      tenantId,
      actor,
    );
    const propagation = await propagateAccessChange(tenantId);
    logger.info("tenant erased", { tenantId, items: erased });
    return json(200, { tenantId, erased: true, itemsDeleted: erased, audit: record, propagation });
  }
  const { tenant, version } = await requireTenant(tenantId);
  if (tenant.status === "deleted") {
    throw conflict(
      "tenant_deleted",
      `tenant ${tenantId} is already deleted; add ?erase=true to erase it`,
      "tenantId",
    );
  }
  const { keysRevoked, endpointsReleased } = await tenantStore.markDeleted(tenantId, version);
  const changes = {
    status: { from: tenant.status, to: "deleted" },
    ...(keysRevoked.length > 0 ? { keysRevoked: { to: keysRevoked } } : {}),
    ...(endpointsReleased.length > 0 ? { endpointsReleased: { to: endpointsReleased } } : {}),
  };
  await auditLog.append({ tenantId, actor, action: "tenant.delete", target: tenantId, changes });
  const propagation = await propagateAccessChange(tenantId);
  logger.info("tenant deleted", { tenantId, keysRevoked: keysRevoked.length });
  return json(200, { tenant: { ...tenant, status: "deleted", endpoints: {} }, changes, propagation });
});
