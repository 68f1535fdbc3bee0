/**
 * The tenant directory: every profile is also under `gsi1pk = TENANTS` in the byTenant index, so listing
 * tenants is a paginated Query, never a Scan. A GSI is eventually consistent: a tenant created a moment
 * ago may be missing from a listing, which only ever reads, never decides.
 */
import { decodeCursor, encodeCursor } from "./cursor";
import { PROFILE } from "./keys";
import { TENANT_DIRECTORY, toTenant } from "./profiles";
import type { Tenant } from "./tenant";
import type { Table } from "./transaction";

/** Tenants a page at a time, in id order. */
export async function listTenants(
  table: Table,
  page: { limit: number; cursor?: string },
): Promise<{ tenants: Tenant[]; nextCursor?: string }> {
  const fits = (p: Record<string, string>) =>
    p.gsi1pk === TENANT_DIRECTORY && p.sk === PROFILE && p.pk === p.gsi1sk && Object.keys(p).length === 4;
  const start = page.cursor ? decodeCursor(page.cursor, fits) : undefined;
  const result = await table.db.query({
    TableName: table.name,
    IndexName: "byTenant",
    KeyConditionExpression: "#g = :directory",
    ExpressionAttributeNames: { "#g": "gsi1pk" },
    ExpressionAttributeValues: { ":directory": TENANT_DIRECTORY },
    Limit: page.limit,
    ...(start ? { ExclusiveStartKey: start } : {}),
  });
  const last = result.LastEvaluatedKey as Record<string, string> | undefined;
  return {
    tenants: (result.Items ?? []).map(toTenant),
    ...(last ? { nextCursor: encodeCursor(last) } : {}),
  };
}
