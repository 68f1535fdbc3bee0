/**
 * What the request path and the local platform use of the tenant table: consistent reads of keys,
 * profiles and endpoint claims, and seeding a tenant. Admin changes are the use-cases in ./admin; the
 * authorizer reads ./key-store and ./profiles directly; each module here and there does one job.
 */

import { resumeTenant, storeNewTenant, suspendTenant } from "./admin/tenants";
import type { NewApiKey } from "./api-key";
import type { DynamoClient } from "./dynamodb/client";
import { type EndpointClaim, endpointClaim } from "./endpoint-claims";
import type { KeyRecord } from "./key-state";
import { findKeyByHash } from "./key-store";
import { getProfile } from "./profiles";
import type { Tenant } from "./tenant";
import type { Table } from "./transaction";

export type { EndpointClaim } from "./endpoint-claims";
export type { KeyRecord, KeyStatus } from "./key-state";

/** The actor of changes the local platform makes itself (its demo tenant), in the audit trail. */
export const PLATFORM_ACTOR = "local-platform";

export class TenantStore {
  readonly table: Table;

  constructor(db: DynamoClient, tableName: string) {
    this.table = { db, name: tableName };
  }

  /** The profile, read strongly consistent: a tenant created a moment ago is found. */
  async get(tenantId: string): Promise<Tenant | undefined> {
    return (await getProfile(this.table, tenantId))?.tenant;
  }

  /** The key stored under this hash, read strongly consistent (the authorizer's lookup, findKeyByHash). */
  findKey(hash: string): Promise<KeyRecord | undefined> {
    return findKeyByHash(this.table, hash);
  }

  endpointClaim(endpointName: string): Promise<EndpointClaim | undefined> {
    return endpointClaim(this.table, endpointName);
  }

  /** Seeds a tenant and its first key (audited, in one transaction); the admin API uses createTenant. */
  create(tenant: Tenant, key: NewApiKey, actor = PLATFORM_ACTOR): Promise<void> {
    return storeNewTenant(this.table, tenant, key, actor);
  }

  /** Suspends or resumes (audited) without the admin API's cache flush, e.g. to show what caches hold. */
  async setStatus(tenantId: string, status: "active" | "suspended", actor = PLATFORM_ACTOR): Promise<void> {
    if (status === "suspended") await suspendTenant(this.table, actor, tenantId);
    else await resumeTenant(this.table, actor, tenantId);
  }
}
