import { AwsCallError } from "@atrium/core/aws-http";
import { AtriumError } from "@atrium/core/errors";

/** Node's codes for a connection that could not be made or was lost. */
const CONNECTION_ERRORS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);

/** The SDK's names for a call that took too long, and AWS's for a service shedding load. */
const UNAVAILABLE_NAMES = new Set([
  "TimeoutError",
  "RequestTimeout",
  "RequestTimeoutException",
  "ThrottlingException",
  "ProvisionedThroughputExceededException",
  "RequestLimitExceeded",
  "TooManyRequestsException",
]);

interface SdkFailure {
  name?: unknown;
  code?: unknown;
  cause?: unknown;
  $metadata?: { httpStatusCode?: number };
}

/**
 * Whether an AWS call failed because the service could not be reached, did not answer in time, or
 * shed load: nothing is wrong with the request, and the same call may well succeed shortly. Atrium's
 * own clients (DynamoDB, SageMaker Runtime) name a connection's failure by its code; the SDK's
 * (STS, API Gateway) carry it as `code` and their status in `$metadata`.
 */
export function isAwsUnavailable(err: unknown, depth = 0): boolean {
  if (err instanceof AwsCallError)
    return (
      err.notSent ||
      UNAVAILABLE_NAMES.has(err.name) ||
      CONNECTION_ERRORS.has(err.name) ||
      (err.status ?? 0) >= 500
    );
  if (typeof err !== "object" || err === null || depth > 5) return false;
  const e = err as SdkFailure;
  if (typeof e.name === "string" && UNAVAILABLE_NAMES.has(e.name)) return true;
  if (typeof e.code === "string" && CONNECTION_ERRORS.has(e.code)) return true;
  const status = e.$metadata?.httpStatusCode;
  if (typeof status === "number" && status >= 500) return true;
  // Credential providers wrap the failure they met.
  return isAwsUnavailable(e.cause, depth + 1);
}

/** The caller's answer when a service Atrium depends on is unavailable: a 503 worth retrying. */
export function serviceUnavailable(): AtriumError {
  const err = new AtriumError(
    503,
    "api_error",
    "service_unavailable",
    "A service Atrium depends on did not answer in time. Retry shortly.",
  );
  err.headers = { "retry-after": "1", "x-should-retry": "true" };
  return err;
}
