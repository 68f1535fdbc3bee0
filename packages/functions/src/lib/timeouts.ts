/**
 * Every wait of a call, chosen together (docs/adr/0007-timeouts.md): each function's timeout, when a
 * call gives up on its model, and each AWS client's connect and request timeouts and attempts.
 * Plain numbers, so the stacks and the local gateway read the same ones the handlers use.
 */
import { RETRY_DELAY_BASE_MS } from "@atrium/core/aws-http";

/** API Gateway answers 504 after this, whatever the function is still doing. */
export const INTEGRATION_TIMEOUT_MS = 29_000;

/**
 * A STREAM integration's timeout: API Gateway streams a response for at most 15 minutes, the most a
 * streamed integration's timeout may be set to (docs/adr/0002-rest-api-and-one-route-table.md).
 */
export const STREAMED_INTEGRATION_TIMEOUT_MS = 15 * 60_000;

/** Lambda timeouts: each under API Gateway's, so the function's own answer reaches the caller. */
export const functionTimeoutSeconds = {
  /**
   * Buffered raw invocations: the model gets all but WIND_UP_MS of it. On streamed routes, the time a
   * call may wait for its model's first token (or a buffered answer) before it gives up.
   */
  modelCall: 27,
  /**
   * Streamed routes (chat, raw streaming): Lambda's longest, as long as API Gateway streams; a stream
   * still running WIND_UP_MS before it ends with an error event, and is settled.
   */
  streamedCall: 900,
  /** Tenant routes that only read DynamoDB (models, usage): a profile, a session, the limiter items. */
  tenantRead: 15,
  /** Admin routes: an erase pages through a whole tenant. */
  admin: 28,
  /** Two rounds of DynamoDB calls; API Gateway waits on it before the route starts. */
  authorizer: 10,
} as const;

/**
 * A call gives up on its model this long before the function's timeout, keeping the time to refund
 * (at most two DynamoDB writes, each bounded by `dynamoTimeouts` below) and answer.
 */
export const WIND_UP_MS = 5_000;

/**
 * Middy's `timeoutEarlyInMillis`: a handler still running this long before the function's timeout is
 * answered 504 and refunded by `onError`, whatever it awaits. Later than WIND_UP_MS, so a call that gave
 * up on its model answers for itself first; still long enough for the refund.
 */
export const STOP_EARLY_MS = 4_500;

/** How long a connection may take to open, and how long it may then stay silent (milliseconds). */
export interface HttpTimeouts {
  connectionTimeout: number;
  requestTimeout: number;
}

/** A client's timeouts and attempts, as Atrium's clients take them. */
export interface ClientTimeouts extends HttpTimeouts {
  maxAttempts: number;
}

const timeouts = (
  connectionTimeout: number,
  requestTimeout: number,
  maxAttempts: number,
): ClientTimeouts => ({
  connectionTimeout,
  requestTimeout,
  maxAttempts,
});

/**
 * DynamoDB answers in milliseconds: each request gets the stage's `dynamodbRequestTimeoutMs` (1 s by
 * default), and one retry, so a call succeeds or fails in about two seconds.
 */
export const dynamoTimeouts = (requestTimeoutMs: number) => timeouts(500, requestTimeoutMs, 2);

/**
 * The usage ledger's writes: one attempt only, as an ADD retried after a timeout might apply twice
 * (docs/adr/0010-usage-ledger.md).
 */
export const ledgerTimeouts = (requestTimeoutMs: number) => timeouts(500, requestTimeoutMs, 1);

/**
 * The endpoint table (fair share, circuit breakers): advisory state read before admission, so one
 * attempt: a hung table delays a call by one request timeout, and a failure ADD is never applied twice.
 */
export const endpointStateTimeouts = (requestTimeoutMs: number) => timeouts(500, requestTimeoutMs, 1);

/**
 * A model call may take the whole route: the call's own deadline (an abort signal) ends it first.
 * Atrium's SageMaker Runtime client makes one attempt; model-retries.ts retries, knowing the deadline
 * and the endpoint.
 */
export const sagemakerTimeouts: HttpTimeouts = {
  connectionTimeout: 1_000,
  requestTimeout: functionTimeoutSeconds.modelCall * 1000 - WIND_UP_MS,
};

/** AssumeRole for a tenant's session, once an hour per tenant and container. */
export const stsTimeouts = timeouts(300, 1_000, 2);

/** FlushStageAuthorizersCache: a control-plane call, slower and throttled; a failure is reported, not thrown. */
export const apiGatewayTimeouts = timeouts(1_000, 3_000, 2);

/**
 * GetMetricData for the reports (core/cloudwatch.ts): 1 s to connect, 5 s of silence (CloudWatch may
 * think a while over 500 queries before it answers) and 2 attempts, so one call fails within about
 * 10 s (worstCallMs), inside the admin route's 28; a report that cannot read CloudWatch says so and
 * still gives the ledger's figures (core/reports/load-report.ts).
 */
export const cloudWatchTimeouts = timeouts(1_000, 5_000, 2);

/**
 * The scheduled reports' PutObject (lib/s3.ts): 1 s to connect, 10 s of silence (S3 takes a report's
 * whole body before it answers) and 2 attempts.
 */
export const s3Timeouts = timeouts(1_000, 10_000, 2);

/** The scheduled reports' budget alerts, SNS Publish (lib/sns.ts): a small message, answered at once. */
export const snsTimeouts = timeouts(1_000, 3_000, 2);

/** The first retry waits a random delay up to this (non-throttling errors; the SDK's standard mode too). */
export const FIRST_RETRY_DELAY_MAX_MS = RETRY_DELAY_BASE_MS.transient;

/** The longest one call on a client can take when every attempt times out. */
export const worstCallMs = (client: ClientTimeouts): number =>
  client.maxAttempts * client.requestTimeout + (client.maxAttempts - 1) * FIRST_RETRY_DELAY_MAX_MS;
