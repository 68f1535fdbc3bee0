import { generateApiKey } from "@atrium/core/api-key";
import { conflict, notFound } from "@atrium/core/errors";
import {
  checkRevocable,
  checkRoomForKey,
  type KeyRecord,
  keyState,
  keyView,
  rotationExpiry,
} from "@atrium/core/key-lifecycle";
import type { Tenant } from "@atrium/core/tenant";
import { actorOf, auditLog, keyIdParam, noBody, requireTenant, tenantIdParam } from "../lib/admin";
import { tenantStore } from "../lib/clients";
import { json, parseJsonBody } from "../lib/http";
import { adminApi } from "../lib/middleware";
import { logger } from "../lib/observability";
import { propagateAccessChange } from "../lib/propagation";

/** Keys can be added to an active or suspended tenant, never to a deleted one. */
function checkNotDeleted(tenant: Tenant): void {
  if (tenant.status === "deleted") {
    throw conflict("tenant_deleted", `tenant ${tenant.id} is deleted; it can only be erased`, "tenantId");
  }
}

async function requireKey(tenantId: string, keyId: string): Promise<KeyRecord> {
  const key = await tenantStore.findKeyById(tenantId, keyId);
  if (!key) throw notFound("key_not_found", `keyId: tenant ${tenantId} has no key ${keyId}`, "keyId");
  return key;
}

/** GET /admin/tenants/{tenantId}/keys: hints, states and dates; never a plaintext or a hash. */
export const list = adminApi(async (event) => {
  const tenantId = tenantIdParam(event);
  await requireTenant(tenantId);
  const now = Date.now();
  const keys = (await tenantStore.listKeys(tenantId))
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
    .map((key) => keyView(key, now));
  return json(200, { tenantId, keys });
});

/** POST /admin/tenants/{tenantId}/keys: one more key; its plaintext is returned once. */
export const create = adminApi(async (event) => {
  const actor = actorOf(event);
  const tenantId = tenantIdParam(event);
  noBody(event);
  const { tenant } = await requireTenant(tenantId);
  checkNotDeleted(tenant);
  checkRoomForKey(await tenantStore.listKeys(tenantId));
  const key = generateApiKey();
  const record = await tenantStore.addKey(tenantId, key);
  await auditLog.append({
    tenantId,
    actor,
    action: "key.create",
    target: key.keyId,
    changes: { hint: { to: key.hint } },
  });
  logger.info("key created", { tenantId, keyId: key.keyId });
  return json(201, { apiKey: key.plaintext, key: keyView(record) });
});

/**
 * POST /admin/tenants/{tenantId}/keys/{keyId}/rotate {graceSeconds}: a new key now; the old one keeps
 * working for the grace period and is refused from its end on (checked on every call, cache or not).
 */
export const rotate = adminApi(async (event) => {
  const actor = actorOf(event);
  const tenantId = tenantIdParam(event);
  const keyId = keyIdParam(event);
  const body = parseJsonBody(event);
  const { tenant } = await requireTenant(tenantId);
  checkNotDeleted(tenant);
  const old = await requireKey(tenantId, keyId);
  const expiresAt = rotationExpiry(old, body);
  checkRoomForKey((await tenantStore.listKeys(tenantId)).filter((key) => key.keyId !== keyId));
  // The new key first: a failure between the two writes leaves two working keys, never none.
  const key = generateApiKey();
  const record = await tenantStore.addKey(tenantId, key);
  const rotated = await tenantStore.expireKey(tenantId, keyId, expiresAt, key.keyId);
  const changes = { expiresAt: { to: rotated.expiresAt }, replacedBy: { to: key.keyId } };
  await auditLog.append({ tenantId, actor, action: "key.rotate", target: keyId, changes });
  // Renews cached authorizer decisions, which then carry the old key's expiry to every call.
  const propagation = await propagateAccessChange(tenantId);
  logger.info("key rotated", { tenantId, keyId, replacedBy: key.keyId, expiresAt: rotated.expiresAt });
  return json(201, { apiKey: key.plaintext, key: keyView(record), rotated: keyView(rotated), propagation });
});

/** POST /admin/tenants/{tenantId}/keys/{keyId}/revoke: the key is refused (401) from the next call. */
export const revoke = adminApi(async (event) => {
  const actor = actorOf(event);
  const tenantId = tenantIdParam(event);
  const keyId = keyIdParam(event);
  noBody(event);
  await requireTenant(tenantId);
  const key = await requireKey(tenantId, keyId);
  checkRevocable(key);
  const revoked = await tenantStore.revokeKey(tenantId, keyId);
  const changes = { state: { from: keyState(key), to: "revoked" } };
  await auditLog.append({ tenantId, actor, action: "key.revoke", target: keyId, changes });
  const propagation = await propagateAccessChange(tenantId);
  logger.info("key revoked", { tenantId, keyId });
  return json(200, { key: keyView(revoked), propagation });
});
