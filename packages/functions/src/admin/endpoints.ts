import { ModelName } from "@atrium/core/config";
import { invalidRequest } from "@atrium/core/errors";
import { dedicatedEndpointOf, newDedicatedEndpoint, tenancyOf } from "@atrium/core/tenant";
import { actorOf, auditLog, noBody, requireTenant, tenantIdParam } from "../lib/admin";
import { config, tenantStore } from "../lib/clients";
import { json, parseJsonBody } from "../lib/http";
import { adminApi } from "../lib/middleware";
import { logger } from "../lib/observability";
import { propagateProfileChange } from "../lib/propagation";
import { StackEnv } from "../lib/stack-env";

/** POST /admin/tenants/{tenantId}/endpoints: dedicates an endpoint to one of the tenant's models. */
export const add = adminApi(async (event) => {
  const actor = actorOf(event);
  const tenantId = tenantIdParam(event);
  const { tenant } = await requireTenant(tenantId);
  const { model, endpoint } = newDedicatedEndpoint(
    tenant,
    parseJsonBody(event),
    config,
    process.env[StackEnv.dedicatedEndpointPrefix],
  );
  const updated = await tenantStore.setDedicatedEndpoint(tenantId, model, endpoint);
  const previous = dedicatedEndpointOf(tenant, model);
  const changes = { [`endpoints.${model}`]: { ...(previous ? { from: previous } : {}), to: endpoint } };
  await auditLog.append({ tenantId, actor, action: "endpoint.add", target: model, changes });
  const propagation = await propagateProfileChange(tenantId, false);
  logger.info("dedicated endpoint set", { tenantId, model, endpointName: endpoint.endpointName });
  return json(200, { tenant: updated, propagation });
});

/** GET /admin/tenants/{tenantId}/endpoints: the tenant's dedicated endpoints, by model. */
export const list = adminApi(async (event) => {
  const { tenant } = await requireTenant(tenantIdParam(event));
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
  await requireTenant(tenantId);
  const removed = await tenantStore.removeDedicatedEndpoint(tenantId, model);
  const changes = { [`endpoints.${model}`]: { from: removed } };
  await auditLog.append({ tenantId, actor, action: "endpoint.remove", target: model, changes });
  const propagation = await propagateProfileChange(tenantId, false);
  logger.info("dedicated endpoint removed", { tenantId, model, endpointName: removed.endpointName });
  return json(200, { tenantId, model, removed, propagation });
});
