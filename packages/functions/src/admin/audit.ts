import { pageLimit } from "@atrium/core/cursor";
import { notFound } from "@atrium/core/errors";
import { auditLog, queryParam, tenantIdParam } from "../lib/admin";
import { tenantStore } from "../lib/clients";
import { json } from "../lib/http";
import { adminApi } from "../lib/middleware";

/**
 * GET /admin/tenants/{tenantId}/audit?limit=&cursor=: the tenant's admin actions, oldest first.
 * Works for an erased tenant too: its trail then holds the erase record alone.
 */
export const list = adminApi(async (event) => {
  const tenantId = tenantIdParam(event);
  const limit = pageLimit(queryParam(event, "limit"), 100, 1000);
  const cursor = queryParam(event, "cursor");
  const page = await auditLog.list(tenantId, { limit, ...(cursor ? { cursor } : {}) });
  if (page.entries.length === 0 && !cursor && !(await tenantStore.get(tenantId))) {
    throw notFound("tenant_not_found", `No tenant ${tenantId}, and no audit trail for it`, "tenantId");
  }
  return json(200, { tenantId, ...page });
});
