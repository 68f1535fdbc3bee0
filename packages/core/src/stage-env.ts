/**
 * What a function reads of the stage config it is given, without zod: the authorizer needs only the
 * DynamoDB request timeout, and parsing the whole config would put zod and every schema in its
 * bundle and its cold start (docs/adr/0014-lambda-bundles.md). config.ts's schema uses the same rule.
 */

/** The environment variable through which a deployed or local function receives its stage config. */
export const STAGE_CONFIG_ENV = "ATRIUM_STAGE_CONFIG";

/** `dynamodbRequestTimeoutMs`: how long one DynamoDB request may take before the client gives up on it. */
export const DYNAMODB_REQUEST_TIMEOUT_MS = { min: 100, max: 10_000, default: 1_000 } as const;

/** The stage's DynamoDB request timeout from STAGE_CONFIG_ENV, checked as the full schema checks it. */
export function dynamodbRequestTimeoutFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[STAGE_CONFIG_ENV];
  if (!raw) throw new Error(`${STAGE_CONFIG_ENV} is not set`);
  const value: unknown = (JSON.parse(raw) as { dynamodbRequestTimeoutMs?: unknown }).dynamodbRequestTimeoutMs;
  if (value === undefined) return DYNAMODB_REQUEST_TIMEOUT_MS.default;
  const { min, max } = DYNAMODB_REQUEST_TIMEOUT_MS;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new Error(
      `Invalid ${STAGE_CONFIG_ENV}: dynamodbRequestTimeoutMs must be an integer from ${min} to ${max}, not ${JSON.stringify(value)}`,
    );
  }
  return value;
}
