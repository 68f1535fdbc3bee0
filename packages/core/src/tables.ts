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

export interface TableShape {
  partitionKey: string;
  sortKey: string;
  indexes: Record<string, { partitionKey: string; sortKey: string }>;
}
