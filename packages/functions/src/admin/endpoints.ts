import { addEndpoint, removeEndpoint } from "@atrium/core/admin/endpoints";
import { ModelName } from "@atrium/core/config";
import { invalidRequest } from "@atrium/core/errors";
import { requireProfile } from "@atrium/core/profiles";
import { tenancyOf } from "@atrium/core/tenant";
import { actorOf, adminTable, noBody, tenantIdParam } from "../lib/admin";
import { adminApi } from "../lib/admin-api";
import { config } from "../lib/clients";
import { json, parseJsonBody } from "../lib/http";
import { logger } from "../lib/observability";
import { propagateProfileChange } from "../lib/propagation";
import { StackEnv } from "../lib/stack-env";

/** POST /admin/tenants/{tenantId}/endpoints: dedicates an endpoint to one of the tenant's models. */
export const add = adminApi(async (event) => {
  const actor = actorOf(event);
  const tenantId = tenantIdParam(event);
  const body = parseJsonBody(event);
  const namePrefix = process.env[StackEnv.dedicatedEndpointPrefix];
  const { tenant } = await addEndpoint(adminTable, config, actor, tenantId, body, namePrefix);
  const propagation = await propagateProfileChange(tenantId, false);
  logger.info("dedicated endpoint set", { tenantId });
  return json(200, { tenant, propagation });
});

/** GET /admin/tenants/{tenantId}/endpoints: the tenant's dedicated endpoints, by model. */
export const list = adminApi(async (event) => {
  const { tenant } = await requireProfile(adminTable, tenantIdParam(event));
  const endpoints = Object.entries(tenant.endpoints)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([model, endpoint]) => ({ model, ...endpoint, region: endpoint.region ?? config.region }));
  return json(200, {
    tenantId: tenant.id,
    tier: tenant.tier,
    tenancy: tenancyOf(tenant.tier, config),
    endpoints,
  });
});

/** DELETE /admin/tenants/{tenantId}/endpoints/{model}: the model stops going to that endpoint at once. */
export const remove = adminApi(async (event) => {
  const actor = actorOf(event);
  const tenantId = tenantIdParam(event);
  const model = event.pathParameters?.model ?? "";
  if (!ModelName.safeParse(model).success) {
    throw invalidRequest("invalid_model", "model: not a valid model name", "model");
  }
  noBody(event);
  const { removed } = await removeEndpoint(adminTable, actor, tenantId, model);
  const propagation = await propagateProfileChange(tenantId, false);
  logger.info("dedicated endpoint removed", { tenantId, model, endpointName: removed.endpointName });
  return json(200, { tenantId, model, removed, propagation });
});
