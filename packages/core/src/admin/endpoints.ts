/**
 * Dedicated-endpoint admin actions: the claim (one tenant per endpoint), the profile's routing entry
 * and the audit entry change together in one transaction, so the profile lists exactly the claims its
 * tenant holds (and a delete or erase finds them there).
 */
import { auditEntry } from "../audit";
import type { StageConfig } from "../config";
import { claimPut, claimRelease } from "../endpoint-claims";
import { conflict, notFound } from "../errors";
import { profileUpdate, requireProfile } from "../profiles";
import { type DedicatedEndpoint, dedicatedEndpointOf, newDedicatedEndpoint, type Tenant } from "../tenant";
import { type Table, writeAtomically } from "../transaction";

/** Keeps a delete (profile, keys, every claim, audit) within one transaction's 100 writes. */
export const MAX_DEDICATED_ENDPOINTS = 50;

/** Field by field: DynamoDB does not keep a map's key order. */
const sameEndpoint = (a: DedicatedEndpoint, b: DedicatedEndpoint) =>
  (["endpointName", "region", "targetModel", "inferenceComponentName"] as const).every((f) => a[f] === b[f]);

/** Dedicates an endpoint to one of the tenant's models; an endpoint it replaces is released. */
export async function addEndpoint(
  table: Table,
  config: StageConfig,
  actor: string,
  tenantId: string,
  raw: unknown,
  /** Deployed stages: the name prefix their IAM policies cover (dedicatedEndpointPrefix, ADR 0006). */
  namePrefix?: string,
  now = new Date(),
): Promise<{ tenant: Tenant }> {
  const { tenant, version } = await requireProfile(table, tenantId);
  const { model, endpoint } = newDedicatedEndpoint(tenant, raw, config, namePrefix);
  const previous = dedicatedEndpointOf(tenant, model);
  // The same registration again: nothing to change, nothing written or audited.
  if (previous && sameEndpoint(previous, endpoint)) return { tenant };
  if (!previous && Object.keys(tenant.endpoints).length >= MAX_DEDICATED_ENDPOINTS) {
    throw conflict(
      "too_many_endpoints",
      `tenant ${tenantId} already has ${MAX_DEDICATED_ENDPOINTS} dedicated endpoints; remove one first`,
    );
  }
  const changes = { [`endpoints.${model}`]: { ...(previous ? { from: previous } : {}), to: endpoint } };
  const audit = auditEntry(table, { tenantId, actor, action: "endpoint.add", target: model, changes }, now);
  const replaced = previous && previous.endpointName !== endpoint.endpointName ? previous : undefined;
  await writeAtomically(table, [
    claimPut(table, tenantId, model, endpoint.endpointName),
    profileUpdate(table, tenantId, version, {
      update: "SET #endpoints.#model = :endpoint, #updatedAt = :now",
      condition: "#status <> :deleted",
      names: { "#endpoints": "endpoints", "#model": model, "#updatedAt": "updatedAt", "#status": "status" },
      values: { ":endpoint": endpoint, ":now": now.toISOString(), ":deleted": "deleted" },
    }),
    ...(replaced ? [claimRelease(table, tenantId, replaced.endpointName)] : []),
    audit.write,
  ]);
  const endpoints = new Map(Object.entries(tenant.endpoints)).set(model, endpoint);
  return { tenant: { ...tenant, endpoints: Object.fromEntries(endpoints) } };
}

/** The model stops going to its dedicated endpoint, and the endpoint is released. */
export async function removeEndpoint(
  table: Table,
  actor: string,
  tenantId: string,
  model: string,
  now = new Date(),
): Promise<{ removed: DedicatedEndpoint }> {
  const { tenant, version } = await requireProfile(table, tenantId);
  const removed = dedicatedEndpointOf(tenant, model);
  if (!removed) {
    throw notFound(
      "endpoint_not_found",
      `model: tenant ${tenantId} has no dedicated endpoint for '${model}'`,
      "model",
    );
  }
  const changes = { [`endpoints.${model}`]: { from: removed } };
  const audit = auditEntry(
    table,
    { tenantId, actor, action: "endpoint.remove", target: model, changes },
    now,
  );
  await writeAtomically(table, [
    profileUpdate(table, tenantId, version, {
      update: "REMOVE #endpoints.#model SET #updatedAt = :now",
      names: { "#endpoints": "endpoints", "#model": model, "#updatedAt": "updatedAt" },
      values: { ":now": now.toISOString() },
    }),
    claimRelease(table, tenantId, removed.endpointName),
    audit.write,
  ]);
  return { removed };
}
