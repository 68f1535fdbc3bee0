/**
 * GDPR erase: every item of a tenant goes, in every table, except the audit record of the erase
 * itself (tenant id, action, actor, time: nothing about the tenant but its generated id). Every item
 * is found from base tables with consistent reads: the tenant's partition `TENANT#<id>#` holds its
 * profile and a reference to each of its keys; its claims were released by the delete that comes first.
 */
import { deleteTenant } from "./admin/tenants";
import { type AuditEntry, auditEntry, ERASE_ACTION, eraseAuditTrail } from "./audit";
import { notFound } from "./errors";
import { keyDeletion } from "./key-store";
import { PROFILE, tenantKey } from "./keys";
import { deletePartition } from "./partition";
import { getProfile, profileDeletion } from "./profiles";
import { type Table, writeAtomically } from "./transaction";

/** A table that keeps all of a tenant's items in the partition `TENANT#<id>#` (limiter, idempotency). */
export interface TenantPartitionTable {
  db: Table["db"];
  tableName: string;
}

/** Deletes the tenant's partition of such a table; returns how many items went. */
export function eraseTenantPartition(table: TenantPartitionTable, tenantId: string): Promise<number> {
  return deletePartition(table.db, table.tableName, tenantKey(tenantId));
}

/**
 * Erases a tenant. Access stops first (a live tenant is deleted: keys revoked, claims released, in one
 * audited transaction), then its keys, the other tables' partitions and the audit trail go; the profile
 * goes last, in one transaction with the erase record, so the record exists only once nothing else
 * does and a partial erase leaves the profile to run it again from.
 */
export async function eraseTenant(
  table: Table,
  actor: string,
  tenantId: string,
  partitions: readonly TenantPartitionTable[],
  now = new Date(),
): Promise<{ erased: number; record: AuditEntry }> {
  const current = await getProfile(table, tenantId);
  if (current && current.tenant.status !== "deleted") await deleteTenant(table, actor, tenantId, now);
  let erased = await eraseOwnPartition(table, tenantId);
  for (const partition of partitions) erased += await eraseTenantPartition(partition, tenantId);
  erased += await eraseAuditTrail(table, tenantId);
  if (!current && erased === 0) throw notFound("tenant_not_found", `No tenant ${tenantId}`, "tenantId");
  const record = auditEntry(table, { tenantId, actor, action: ERASE_ACTION, target: tenantId }, now);
  await writeAtomically(table, [...(current ? [profileDeletion(table, tenantId)] : []), record.write]);
  return { erased: erased + (current ? 1 : 0), record: record.entry };
}

/** Everything in `TENANT#<id>#` but the profile: each key reference with the key item it names. */
async function eraseOwnPartition(table: Table, tenantId: string): Promise<number> {
  let erased = 0;
  const pages = table.db.queryPages({
    TableName: table.name,
    KeyConditionExpression: "#pk = :pk",
    ExpressionAttributeNames: { "#pk": "pk" },
    ExpressionAttributeValues: { ":pk": tenantKey(tenantId) },
    ConsistentRead: true,
  });
  for await (const page of pages) {
    for (const item of page.Items ?? []) {
      if (item.sk === PROFILE) continue;
      if (item.type === "keyRef") {
        await writeAtomically(table, keyDeletion(table, tenantId, String(item.keyId), String(item.hash)));
        erased += 2;
      } else {
        await table.db.delete({ TableName: table.name, Key: { pk: item.pk, sk: item.sk } });
        erased += 1;
      }
    }
  }
  return erased;
}
