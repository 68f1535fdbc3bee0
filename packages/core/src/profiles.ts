/**
 * Tenant profiles (`TENANT#<id>#` / `PROFILE`): read strongly consistent, written only inside an admin
 * action's transaction, each write checking the revision (`version`) the action read.
 */
import { conflict, notFound } from "./errors";
import { PROFILE, tenantKey } from "./keys";
import type { Tenant } from "./tenant";
import { RETURN_OLD, type Table, type Write } from "./transaction";

/** Every profile is also an entry of the tenant directory, so listing tenants is a Query, never a Scan. */
export const TENANT_DIRECTORY = "TENANTS";
export const directoryEntry = (tenantId: string) => ({
  gsi1pk: TENANT_DIRECTORY,
  gsi1sk: tenantKey(tenantId),
});

/** A profile and the revision a write must find unchanged (a profile written before revisions is 0). */
export interface VersionedTenant {
  tenant: Tenant;
  version: number;
}

export async function getProfile(table: Table, tenantId: string): Promise<VersionedTenant | undefined> {
  const { Item } = await table.db.get({
    TableName: table.name,
    Key: { pk: tenantKey(tenantId), sk: PROFILE },
    ConsistentRead: true,
  });
  if (!Item) return undefined;
  return { tenant: toTenant(Item), version: typeof Item.version === "number" ? Item.version : 0 };
}

export async function requireProfile(table: Table, tenantId: string): Promise<VersionedTenant> {
  const found = await getProfile(table, tenantId);
  if (!found) throw tenantNotFound(tenantId);
  return found;
}

/** A new profile, refused if the id is taken. */
export function profileCreation(table: Table, tenant: Tenant): Write {
  return {
    action: {
      Put: {
        TableName: table.name,
        Item: {
          pk: tenantKey(tenant.id),
          sk: PROFILE,
          type: "tenant",
          ...directoryEntry(tenant.id),
          ...tenant,
        },
        ConditionExpression: "attribute_not_exists(#pk)",
        ExpressionAttributeNames: { "#pk": "pk" },
      },
    },
    refused: () => new Error(`tenant id ${tenant.id} is taken`),
  };
}

export interface ProfileChange {
  /** SET / REMOVE clauses, if any; every profile write also gets `ADD #version :one`. */
  update?: string;
  /** Extra condition, besides "exists" and the revision. */
  condition?: string;
  names?: Record<string, string>;
  values?: Record<string, unknown>;
}

/**
 * A profile write that must find the revision `version` unchanged and bumps it. Refused: 404 when the
 * tenant is gone, 409 `tenant_deleted` when it was deleted meanwhile, otherwise 409 `tenant_changed`.
 */
export function profileUpdate(table: Table, tenantId: string, version: number, change: ProfileChange): Write {
  // Profiles written before revisions existed have none: they count as revision 0.
  const unchanged = version === 0 ? "attribute_not_exists(#version)" : "#version = :version";
  const condition = ["attribute_exists(#pk)", unchanged, change.condition].filter(Boolean).join(" AND ");
  return {
    action: {
      Update: {
        TableName: table.name,
        Key: { pk: tenantKey(tenantId), sk: PROFILE },
        UpdateExpression: [change.update, "ADD #version :one"].filter(Boolean).join(" "),
        ConditionExpression: condition,
        ExpressionAttributeNames: { ...change.names, "#pk": "pk", "#version": "version" },
        ExpressionAttributeValues: {
          ...change.values,
          ":one": 1,
          ...(version === 0 ? {} : { ":version": version }),
        },
        ...RETURN_OLD,
      },
    },
    refused: (old) => {
      if (!old) return tenantNotFound(tenantId);
      if (old.status === "deleted") return tenantDeleted(tenantId);
      return changedMeanwhile(tenantId);
    },
  };
}

/** Deletes the profile (the last step of an erase), whatever its revision. */
export function profileDeletion(table: Table, tenantId: string): Write {
  return { action: { Delete: { TableName: table.name, Key: { pk: tenantKey(tenantId), sk: PROFILE } } } };
}

export const tenantNotFound = (tenantId: string) =>
  notFound("tenant_not_found", `No tenant ${tenantId}`, "tenantId");

export const tenantDeleted = (tenantId: string) =>
  conflict("tenant_deleted", `tenant ${tenantId} is deleted; it can only be erased`, "tenantId");

export const changedMeanwhile = (tenantId: string) =>
  conflict(
    "tenant_changed",
    `tenant ${tenantId} was changed by another call meanwhile; read it again and retry`,
  );

export function toTenant(item: Record<string, unknown>): Tenant {
  const { id, name, tier, status, compliance, regions, endpoints, models, limits, limiterShards, createdAt } =
    item as unknown as Tenant;
  return {
    id,
    name,
    tier,
    status,
    compliance: compliance ?? [],
    ...(regions ? { regions } : {}),
    endpoints: endpoints ?? {},
    ...(models ? { models } : {}),
    ...(limits && Object.keys(limits).length > 0 ? { limits } : {}),
    ...(limiterShards && limiterShards > 1 ? { limiterShards } : {}),
    createdAt,
  };
}
