import { invalidRequest, notFound } from "@atrium/core/errors";
import { isTenantId } from "@atrium/core/ids";
import { newDedicatedEndpoint } from "@atrium/core/tenant";
import { config, tenantStore } from "../lib/clients";
import { json, parseJsonBody } from "../lib/http";
import { adminApi } from "../lib/middleware";
import { logger } from "../lib/observability";
import { forgetTenant } from "../lib/tenant-cache";

/** POST /admin/tenants/{tenantId}/endpoints: dedicates an endpoint to one of the tenant's models. */
export const add = adminApi(async (event) => {
  const tenantId = event.pathParameters?.tenantId ?? "";
  if (!isTenantId(tenantId))
    throw invalidRequest("invalid_tenant_id", `tenantId: '${tenantId}' is not a tenant id`, "tenantId");
  const tenant = await tenantStore.get(tenantId);
  if (!tenant) throw notFound("tenant_not_found", `No tenant ${tenantId}`, "tenantId");
  const { model, endpoint } = newDedicatedEndpoint(tenant, parseJsonBody(event), config);
  const updated = await tenantStore.setDedicatedEndpoint(tenantId, model, endpoint);
  forgetTenant(tenantId);
  logger.info("dedicated endpoint set", { tenantId, model, endpointName: endpoint.endpointName });
  return json(200, { tenant: updated });
});
