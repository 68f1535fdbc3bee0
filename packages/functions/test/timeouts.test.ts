/**
 * The arithmetic of docs/adr/0007-timeouts.md, on the numbers the stacks deploy and the handlers
 * use, for every deployed stage's config: change one of them and these say which promise it breaks.
 */
import { loadStageConfigFile } from "@atrium/core/config";
import { describe, expect, it } from "vitest";
import { authorizer, gatewayLimits, routes } from "../src/api";
import {
  apiGatewayTimeouts,
  cloudWatchTimeouts,
  dynamoTimeouts,
  functionTimeoutSeconds,
  INTEGRATION_TIMEOUT_MS,
  STOP_EARLY_MS,
  STREAMED_INTEGRATION_TIMEOUT_MS,
  s3Timeouts,
  sagemakerTimeouts,
  snsTimeouts,
  stsTimeouts,
  WIND_UP_MS,
  worstCallMs,
} from "../src/lib/timeouts";

/** Cold start (Lambda init) runs on API Gateway's clock, not the function's: the room left for it. */
const COLD_START_ROOM_MS = 2_000;

describe("the clients without a stage setting", () => {
  it("each have a connect and a request timeout", () => {
    // Atrium's own clients (STS, API Gateway, SageMaker Runtime, CloudWatch, S3, SNS) always fail a request past its timeout.
    for (const client of [
      stsTimeouts,
      apiGatewayTimeouts,
      sagemakerTimeouts,
      cloudWatchTimeouts,
      s3Timeouts,
      snsTimeouts,
    ]) {
      expect(client.connectionTimeout).toBeGreaterThan(0);
      expect(client.requestTimeout).toBeGreaterThanOrEqual(client.connectionTimeout);
    }
  });

  it("retry STS, API Gateway, CloudWatch, S3 and SNS calls once", () => {
    expect(stsTimeouts.maxAttempts).toBe(2);
    expect(apiGatewayTimeouts.maxAttempts).toBe(2);
    expect(cloudWatchTimeouts.maxAttempts).toBe(2);
    expect(s3Timeouts.maxAttempts).toBe(2);
    expect(snsTimeouts.maxAttempts).toBe(2);
  });

  it("give the scheduled reports' S3 write and SNS alert 1 s to connect, 10 s and 3 s to answer", () => {
    expect(s3Timeouts).toEqual({ connectionTimeout: 1_000, requestTimeout: 10_000, maxAttempts: 2 });
    expect(snsTimeouts).toEqual({ connectionTimeout: 1_000, requestTimeout: 3_000, maxAttempts: 2 });
  });

  it("give up on CloudWatch within the admin route's time, every attempt timed out", () => {
    expect(worstCallMs(cloudWatchTimeouts)).toBeLessThan(functionTimeoutSeconds.admin * 1000);
  });

  it("give a model call the whole route, up to the point where it must give up", () => {
    expect(sagemakerTimeouts.requestTimeout).toBe(functionTimeoutSeconds.modelCall * 1000 - WIND_UP_MS);
  });
});

describe("function timeouts", () => {
  it("are all under their integration's timeout (15 minutes when it streams), which the local gateway uses too", () => {
    expect(gatewayLimits.integrationTimeoutMs).toBe(INTEGRATION_TIMEOUT_MS);
    for (const route of routes) {
      const integrationTimeoutMs = route.stream ? STREAMED_INTEGRATION_TIMEOUT_MS : INTEGRATION_TIMEOUT_MS;
      expect(route.timeoutSeconds * 1000, `${route.method} ${route.path}`).toBeLessThanOrEqual(
        integrationTimeoutMs,
      );
    }
  });

  it("stop a stream before the function's timeout, and wait for a first token no longer than for a buffered answer", () => {
    expect(functionTimeoutSeconds.streamedCall * 1000).toBe(STREAMED_INTEGRATION_TIMEOUT_MS);
    expect(WIND_UP_MS).toBeGreaterThan(STOP_EARLY_MS);
    expect(functionTimeoutSeconds.modelCall * 1000).toBeLessThan(INTEGRATION_TIMEOUT_MS);
  });

  it("give streamed routes the streamed-call timeout, raw invocations the model-call one, every other route its kind's", () => {
    for (const route of routes) {
      // Raw invocations stream their one body only to settle after it: a buffered model call's timeout.
      const rawInvocation = route.path === "/v1/models/{model}/invocations";
      const expected = route.path.startsWith("/admin/")
        ? functionTimeoutSeconds.admin
        : route.stream && !rawInvocation
          ? functionTimeoutSeconds.streamedCall
          : route.method === "POST"
            ? functionTimeoutSeconds.modelCall
            : functionTimeoutSeconds.tenantRead;
      expect(route.timeoutSeconds, `${route.method} ${route.path}`).toBe(expected);
    }
  });
});

for (const stage of ["dev", "prod"]) {
  describe(`deployed stage ${stage}`, () => {
    const dynamo = dynamoTimeouts(loadStageConfigFile(`config/${stage}.json`).dynamodbRequestTimeoutMs);
    /** A settle is one DynamoDB write, or two when its guard fails (docs/adr/0004-exact-limits.md). */
    const worstSettleMs = 2 * worstCallMs(dynamo);
    const functionMs = functionTimeoutSeconds.modelCall * 1000;
    const giveUpAt = functionMs - WIND_UP_MS;

    it("gives DynamoDB about a second per attempt and one retry", () => {
      // Atrium's DynamoDB client fails an attempt once its request timeout passes (test/integration/dynamodb-client.test.ts).
      expect(dynamo.requestTimeout).toBeLessThanOrEqual(1_000);
      expect(dynamo.maxAttempts).toBe(2);
    });

    it("lets a fail-closed tier answer 503 within 3 s of its admission starting", () => {
      expect(worstCallMs(dynamo)).toBeLessThan(3_000);
    });

    it("lets the authorizer and the read routes make two rounds of DynamoDB calls with time to spare", () => {
      expect(2 * worstCallMs(dynamo)).toBeLessThan((authorizer.timeoutSeconds * 1000) / 2);
      // Profile, tenant session (STS) and limiter items, before middy's early stop.
      const reads = 2 * worstCallMs(dynamo) + worstCallMs(stsTimeouts);
      expect(reads).toBeLessThan(functionTimeoutSeconds.tenantRead * 1000 - STOP_EARLY_MS);
    });

    it("refunds a model call that ran out of time before the function's timeout, on either path", () => {
      expect(giveUpAt + worstSettleMs).toBeLessThan(functionMs);
      expect(STOP_EARLY_MS).toBeLessThan(WIND_UP_MS);
      expect(worstSettleMs).toBeLessThan(STOP_EARLY_MS);
    });

    it("never charges after API Gateway's 504: the latest charge lands before it, cold start included", () => {
      // A reply just before the deadline, then the settle that charges it.
      expect(giveUpAt + worstSettleMs + COLD_START_ROOM_MS).toBeLessThanOrEqual(INTEGRATION_TIMEOUT_MS);
    });
  });
}
