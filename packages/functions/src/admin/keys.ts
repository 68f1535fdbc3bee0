import { createKey, revokeKey, rotateKey } from "@atrium/core/admin/keys";
import { keyView } from "@atrium/core/key-lifecycle";
import { listKeys } from "@atrium/core/key-store";
import { requireProfile } from "@atrium/core/profiles";
import { actorOf, adminTable, keyIdParam, noBody, tenantIdParam } from "../lib/admin";
import { adminApi } from "../lib/admin-api";
import { json, parseJsonBody } from "../lib/http";
import { idempotency } from "../lib/idempotency";
import { logger } from "../lib/observability";
import { propagateAccessChange } from "../lib/propagation";

/** GET /admin/tenants/{tenantId}/keys: hints, states and dates; never a plaintext or a hash. */
export const list = adminApi(async (event) => {
  const tenantId = tenantIdParam(event);
  await requireProfile(adminTable, tenantId);
  const now = Date.now();
  const keys = (await listKeys(adminTable, tenantId))
    .map((key) => key.record)
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
    .map((key) => keyView(key, now));
  return json(200, { tenantId, keys });
});

/** POST /admin/tenants/{tenantId}/keys: one more key; its plaintext is returned once. */
export const create = adminApi(
  async (event) => {
    const actor = actorOf(event);
    const tenantId = tenantIdParam(event);
    noBody(event);
    const { key, record } = await createKey(adminTable, actor, tenantId);
    logger.info("key created", { tenantId, keyId: key.keyId });
    return json(201, { apiKey: key.plaintext, key: keyView(record) });
  },
  { idempotency: idempotency() },
);

/**
 * POST /admin/tenants/{tenantId}/keys/{keyId}/rotate {graceSeconds}: a new key now; the old one keeps
 * working for the grace period and is refused from its end on (checked on every call, cache or not).
 */
export const rotate = adminApi(
  async (event) => {
    const actor = actorOf(event);
    const tenantId = tenantIdParam(event);
    const keyId = keyIdParam(event);
    const { key, record, rotated } = await rotateKey(
      adminTable,
      actor,
      tenantId,
      keyId,
      parseJsonBody(event),
    );
    // Renews cached authorizer decisions, which then carry the old key's expiry to every call.
    const propagation = await propagateAccessChange(tenantId);
    logger.info("key rotated", { tenantId, keyId, replacedBy: key.keyId, expiresAt: rotated.expiresAt });
    return json(201, { apiKey: key.plaintext, key: keyView(record), rotated: keyView(rotated), propagation });
  },
  { idempotency: idempotency() },
);

/** POST /admin/tenants/{tenantId}/keys/{keyId}/revoke: the key is refused (401) from the next call. */
export const revoke = adminApi(async (event) => {
  const actor = actorOf(event);
  const tenantId = tenantIdParam(event);
  const keyId = keyIdParam(event);
  noBody(event);
  const { revoked } = await revokeKey(adminTable, actor, tenantId, keyId);
  const propagation = await propagateAccessChange(tenantId);
  logger.info("key revoked", { tenantId, keyId });
  return json(200, { key: keyView(revoked), propagation });
});
