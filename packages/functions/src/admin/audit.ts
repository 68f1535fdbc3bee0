import { listAuditEntries } from "@atrium/core/audit";
import { pageLimit } from "@atrium/core/cursor";
import { getProfile, tenantNotFound } from "@atrium/core/profiles";
import { adminTable, queryParam, tenantIdParam } from "../lib/admin";
import { adminApi } from "../lib/admin-api";
import { json } from "../lib/http";

/**
 * GET /admin/tenants/{tenantId}/audit?limit=&cursor=: the tenant's admin actions, oldest first.
 * Works for an erased tenant too: its trail then holds the erase record alone.
 */
export const list = adminApi(async (event) => {
  const tenantId = tenantIdParam(event);
  const limit = pageLimit(queryParam(event, "limit"), 100, 1000);
  const cursor = queryParam(event, "cursor");
  const page = await listAuditEntries(adminTable, tenantId, { limit, ...(cursor ? { cursor } : {}) });
  if (page.entries.length === 0 && !cursor && !(await getProfile(adminTable, tenantId))) {
    throw tenantNotFound(tenantId);
  }
  return json(200, { tenantId, ...page });
});
