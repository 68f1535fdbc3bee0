import { generateApiKey } from "@atrium/core/api-key";
import { newTenant } from "@atrium/core/tenant";
import { config, tenantStore } from "../lib/clients";
import { json, parseJsonBody } from "../lib/http";
import { adminApi } from "../lib/middleware";
import { logger } from "../lib/observability";

/** POST /admin/tenants: a tenant and its first API key in one call; the key's plaintext is returned once. */
export const create = adminApi(async (event) => {
  const tenant = newTenant(parseJsonBody(event), config);
  const key = generateApiKey();
  await tenantStore.create(tenant, key);
  logger.info("tenant created", { tenantId: tenant.id, tier: tenant.tier, keyId: key.keyId });
  return json(201, { tenant, apiKey: key.plaintext, key: { keyId: key.keyId, hint: key.hint } });
});
