/**
 * GDPR erase: every item of a tenant goes, in every table, except the audit record of the erase
 * itself (tenant id, action, actor, time: nothing about the tenant but its generated id).
 */
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { type AuditEntry, type AuditLog, ERASE_ACTION } from "./audit";
import { notFound } from "./errors";
import { tenantKey } from "./keys";
import { deletePartition } from "./partition";
import type { TenantStore } from "./store";

/** A table that keeps all of a tenant's items in the partition `TENANT#<id>#` (the limiter's, for one). */
export interface TenantPartitionTable {
  db: DynamoDBDocumentClient;
  tableName: string;
}

/** Deletes the tenant's partition of such a table; returns how many items went. */
export function eraseTenantPartition(table: TenantPartitionTable, tenantId: string): Promise<number> {
  return deletePartition(table.db, table.tableName, tenantKey(tenantId));
}

export interface EraseDependencies {
  store: TenantStore;
  audit: AuditLog;
  /** Other tables keyed by `TENANT#<id>#` (limiter state, usage). */
  partitions: readonly TenantPartitionTable[];
}

/**
 * Erases a tenant. Access stops first (a live tenant is soft-deleted: keys revoked), then keys, claims,
 * the profile, the other tables' partitions and the audit trail go, and the erase is recorded last, so
 * the record only exists once nothing else does. Safe to run again after a partial failure.
 */
export async function eraseTenant(
  deps: EraseDependencies,
  tenantId: string,
  actor: string,
  now = new Date(),
): Promise<{ erased: number; record: AuditEntry }> {
  const current = await deps.store.getVersioned(tenantId);
  if (current && current.tenant.status !== "deleted") {
    await deps.store.markDeleted(tenantId, current.version, now);
  }
  let erased = await deps.store.eraseItems(tenantId);
  for (const table of deps.partitions) erased += await eraseTenantPartition(table, tenantId);
  erased += await deps.audit.eraseTrail(tenantId);
  if (!current && erased === 0) throw notFound("tenant_not_found", `No tenant ${tenantId}`, "tenantId");
  const record = await deps.audit.append({ tenantId, actor, action: ERASE_ACTION, target: tenantId }, now);
  return { erased, record };
}
