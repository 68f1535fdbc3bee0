/**
 * Tenant admin actions. Each reads what it decides on consistently, then writes the change and its
 * audit entry in one transaction whose conditions re-check what it read (docs/adr/0005).
 */
import { generateApiKey, type NewApiKey } from "../api-key";
import { type AuditChange, auditEntry, changesBetween } from "../audit";
import type { StageConfig } from "../config";
import { claimRelease } from "../endpoint-claims";
import { conflict } from "../errors";
import { isKeyUsable } from "../key-state";
import { keyCreation, keyRevocation, listKeys } from "../key-store";
import { directoryEntry, profileCreation, profileUpdate, requireProfile } from "../profiles";
import { newTenant, type Tenant, type TenantStatus, UPDATABLE_FIELDS, updatedTenant } from "../tenant";
import { type Table, writeAtomically } from "../transaction";

/** POST /admin/tenants: a tenant and its first key; the key's plaintext is returned once, never stored. */
export async function createTenant(
  table: Table,
  config: StageConfig,
  actor: string,
  raw: unknown,
  now = new Date(),
): Promise<{ tenant: Tenant; key: NewApiKey }> {
  const tenant = newTenant(raw, config, now);
  const key = generateApiKey();
  await storeNewTenant(table, tenant, key, actor, now);
  return { tenant, key };
}

/** Profile, first key and the audit entry: one transaction. */
export async function storeNewTenant(
  table: Table,
  tenant: Tenant,
  key: NewApiKey,
  actor: string,
  now = new Date(),
): Promise<void> {
  const { writes: keyWrites } = keyCreation(table, tenant.id, key, tenant.createdAt);
  const changes = {
    ...changesBetween(undefined, tenant, ["status", ...UPDATABLE_FIELDS]),
    key: { to: key.keyId },
  };
  const audit = auditEntry(
    table,
    { tenantId: tenant.id, actor, action: "tenant.create", target: tenant.id, changes },
    now,
  );
  await writeAtomically(table, [profileCreation(table, tenant), ...keyWrites, audit.write]);
}

/** PATCH: the fields the request sets. Nothing to change: nothing written, nothing audited. */
export async function updateTenant(
  table: Table,
  config: StageConfig,
  actor: string,
  tenantId: string,
  raw: unknown,
  now = new Date(),
): Promise<{ tenant: Tenant; changes: Record<string, AuditChange> }> {
  const { tenant, version } = await requireProfile(table, tenantId);
  const next = updatedTenant(tenant, raw, config);
  const changes = changesBetween(tenant, next, UPDATABLE_FIELDS);
  if (Object.keys(changes).length === 0) return { tenant, changes };

  const names: Record<string, string> = {
    "#status": "status",
    "#updatedAt": "updatedAt",
    "#g": "gsi1pk",
    "#gs": "gsi1sk",
  };
  const directory = directoryEntry(tenantId);
  const values: Record<string, unknown> = {
    ":now": now.toISOString(),
    ":deleted": "deleted",
    ":g": directory.gsi1pk,
    ":gs": directory.gsi1sk,
  };
  // Profiles written before the directory existed join it on their next update.
  const set = ["#updatedAt = :now", "#g = :g", "#gs = :gs"];
  const remove: string[] = [];
  for (const field of UPDATABLE_FIELDS) {
    names[`#${field}`] = field;
    const value = next[field];
    if (value === undefined) remove.push(`#${field}`);
    else {
      set.push(`#${field} = :${field}`);
      values[`:${field}`] = value;
    }
  }
  const update = `SET ${set.join(", ")}${remove.length > 0 ? ` REMOVE ${remove.join(", ")}` : ""}`;
  const audit = auditEntry(
    table,
    { tenantId, actor, action: "tenant.update", target: tenantId, changes },
    now,
  );
  await writeAtomically(table, [
    profileUpdate(table, tenantId, version, { update, condition: "#status <> :deleted", names, values }),
    audit.write,
  ]);
  return { tenant: next, changes };
}

export const suspendTenant = (table: Table, actor: string, tenantId: string, now = new Date()) =>
  transition(table, actor, tenantId, "active", "suspended", now);

export const resumeTenant = (table: Table, actor: string, tenantId: string, now = new Date()) =>
  transition(table, actor, tenantId, "suspended", "active", now);

async function transition(
  table: Table,
  actor: string,
  tenantId: string,
  from: TenantStatus,
  to: TenantStatus,
  now: Date,
): Promise<{ tenant: Tenant; changes: Record<string, AuditChange> }> {
  const { tenant, version } = await requireProfile(table, tenantId);
  if (tenant.status !== from) {
    throw conflict(
      `tenant_${tenant.status}`,
      `tenant ${tenantId} is ${tenant.status}, not ${from}`,
      "tenantId",
    );
  }
  const changes = { status: { from, to } };
  const action = to === "suspended" ? "tenant.suspend" : "tenant.resume";
  const audit = auditEntry(table, { tenantId, actor, action, target: tenantId, changes }, now);
  await writeAtomically(table, [
    profileUpdate(table, tenantId, version, {
      update: "SET #status = :to, #updatedAt = :now",
      condition: "#status = :from",
      names: { "#status": "status", "#updatedAt": "updatedAt" },
      values: { ":from": from, ":to": to, ":now": now.toISOString() },
    }),
    audit.write,
  ]);
  return { tenant: { ...tenant, status: to }, changes };
}

/**
 * Soft delete: the profile turns `deleted` (the authorizer denies it, nothing can be added), every
 * working key is revoked and every endpoint claim released, with the audit entry, in one transaction.
 * The data stays until an erase.
 */
export async function deleteTenant(
  table: Table,
  actor: string,
  tenantId: string,
  now = new Date(),
): Promise<{ tenant: Tenant; changes: Record<string, AuditChange> }> {
  const { tenant, version } = await requireProfile(table, tenantId);
  if (tenant.status === "deleted") {
    throw conflict(
      "tenant_deleted",
      `tenant ${tenantId} is already deleted; add ?erase=true to erase it`,
      "tenantId",
    );
  }
  const live = (await listKeys(table, tenantId)).filter((key) => isKeyUsable(key.record, now.getTime()));
  const released = Object.values(tenant.endpoints).map((endpoint) => endpoint.endpointName);
  const keysRevoked = live.map((key) => key.record.keyId);
  const changes = {
    status: { from: tenant.status, to: "deleted" },
    ...(keysRevoked.length > 0 ? { keysRevoked: { to: keysRevoked } } : {}),
    ...(released.length > 0 ? { endpointsReleased: { to: released } } : {}),
  };
  const audit = auditEntry(
    table,
    { tenantId, actor, action: "tenant.delete", target: tenantId, changes },
    now,
  );
  await writeAtomically(table, [
    profileUpdate(table, tenantId, version, {
      update: "SET #status = :deleted, #endpoints = :none, #updatedAt = :now",
      condition: "#status <> :deleted",
      names: { "#status": "status", "#endpoints": "endpoints", "#updatedAt": "updatedAt" },
      values: { ":deleted": "deleted", ":none": {}, ":now": now.toISOString() },
    }),
    ...live.map((key) => keyRevocation(table, key, now)),
    ...released.map((endpointName) => claimRelease(table, tenantId, endpointName)),
    audit.write,
  ]);
  return { tenant: { ...tenant, status: "deleted", endpoints: {} }, changes };
}
