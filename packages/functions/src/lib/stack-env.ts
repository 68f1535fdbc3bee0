/**
 * Environment variables the stacks (stacks/Api.ts) give the functions besides the table names and
 * the stage config. The local platform sets the admin ones for its emulator, never the tenant role.
 * `requireEnv` reads any of them, or a table name, that a function cannot run without.
 */
export const StackEnv = {
  /** /v1 functions: the role assumed per tenant for DynamoDB and SageMaker calls (docs/adr/0006). */
  tenantRoleArn: "ATRIUM_TENANT_ROLE_ARN",
  /** Admin functions: the REST API and stage whose authorizer cache FlushStageAuthorizersCache empties. */
  restApiId: "ATRIUM_REST_API_ID",
  apiStage: "ATRIUM_API_STAGE",
  /** Admin functions: the name every dedicated endpoint of the stage starts with (IAM covers only those). */
  dedicatedEndpointPrefix: "ATRIUM_DEDICATED_ENDPOINT_PREFIX",
} as const;

/** The STS session tag that carries the tenant id into the tenant access role's policy. */
export const TENANT_TAG = "TenantId";

export function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}
