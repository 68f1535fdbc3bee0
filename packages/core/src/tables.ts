/**
 * DynamoDB table shapes, shared by the Data stack and the local platform so the two cannot drift.
 * Item design: docs/data-model.md.
 */
export const TenantTable = {
  /** Environment variable that carries the deployed or local table name to the functions. */
  env: "ATRIUM_TENANTS_TABLE",
  partitionKey: "pk",
  sortKey: "sk",
  indexes: { byTenant: { partitionKey: "gsi1pk", sortKey: "gsi1sk" } },
} as const;

/**
 * Limiter state, one item per tenant (or per shard of a hot tenant): `pk = TENANT#<id>#`,
 * `sk = LIMITER#<shard>`. Written by the admission path only; design in docs/adr/0004.
 */
export const LimiterTable = {
  env: "ATRIUM_LIMITER_TABLE",
  partitionKey: "pk",
  sortKey: "sk",
  indexes: {},
  /** Items of tenants that stop calling expire on their own. */
  timeToLiveAttribute: "expiresAt",
} as const;

/**
 * Idempotency records (the `Idempotency-Key` header), kept 24 h: `pk = TENANT#<id>#` for a tenant's
 * calls and admin calls on one tenant, `ADMIN#` for tenant creation; `sk = IDEMPOTENCY#<hash>`.
 * Written by Powertools Idempotency's DynamoDB persistence layer; design in docs/data-model.md.
 */
export const IdempotencyTable = {
  env: "ATRIUM_IDEMPOTENCY_TABLE",
  partitionKey: "pk",
  sortKey: "sk",
  indexes: {},
  /** Powertools' expiry attribute (epoch seconds): records go on their own after 24 h. */
  timeToLiveAttribute: "expiration",
} as const;

/**
 * The usage ledger (docs/adr/0010-usage-ledger.md): one item per tenant, UTC hour and model, with
 * counters added by each call's settle: `pk = TENANT#<id>#` (so a tenant's erase and IAM's leading
 * keys cover it), `sk = USAGE#<YYYY-MM-DD>T<HH>#<model>`. Kept `usageRetentionDays`, then expired by TTL.
 */
export const UsageTable = {
  env: "ATRIUM_USAGE_TABLE",
  partitionKey: "pk",
  sortKey: "sk",
  indexes: {},
  timeToLiveAttribute: "expiresAt",
} as const;

/**
 * Shared state of each endpoint, for every Lambda instance (docs/adr/0012-fair-share.md): one item
 * per endpoint, `pk = ENDPOINT#<endpointName>`, whether it is contended and which tenants use it.
 * Not tenant data: it only names tenants active on an endpoint lately (an erase removes them).
 */
export const EndpointTable = {
  env: "ATRIUM_ENDPOINTS_TABLE",
  partitionKey: "pk",
  indexes: {},
} as const;

export interface TableShape {
  partitionKey: string;
  sortKey?: string;
  indexes: Record<string, { partitionKey: string; sortKey: string }>;
  timeToLiveAttribute?: string;
}
