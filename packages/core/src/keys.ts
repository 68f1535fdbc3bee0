import { DELIMITER, isTenantId } from "./ids";

/**
 * Every key of a tenant's items is `TENANT#<id>#`: the trailing delimiter means no tenant id is a
 * prefix match of another (`TENANT#t1#` never begins `TENANT#t10#`), in queries and in IAM
 * `dynamodb:LeadingKeys` conditions alike.
 */
export function tenantKey(tenantId: string): string {
  if (!isTenantId(tenantId)) throw new Error(`Not a tenant id: ${JSON.stringify(tenantId)}`);
  return `TENANT${DELIMITER}${tenantId}${DELIMITER}`;
}

export const PROFILE = "PROFILE";
export const apiKeyKey = (hash: string) => `KEY${DELIMITER}${hash}`;
export const keySortKey = (keyId: string) => `KEY${DELIMITER}${keyId}`;
export const endpointKey = (endpointName: string) => `ENDPOINT${DELIMITER}${endpointName}`;

/** A tenant's audit trail: its own partition, so erasing the tenant's items can keep the erase record. */
export function auditKey(tenantId: string): string {
  if (!isTenantId(tenantId)) throw new Error(`Not a tenant id: ${JSON.stringify(tenantId)}`);
  return `AUDIT${DELIMITER}${tenantId}${DELIMITER}`;
}
