/**
 * The arithmetic of docs/adr/0007-timeouts.md, on the numbers the stacks deploy and the handlers
 * use: change one of them and these say which promise it breaks.
 */
import { describe, expect, it } from "vitest";
import { authorizer, gatewayLimits, routes } from "../src/api";
import {
  apiGatewayTimeouts,
  dynamoTimeouts,
  functionTimeoutSeconds,
  INTEGRATION_TIMEOUT_MS,
  STOP_EARLY_MS,
  sagemakerTimeouts,
  stsTimeouts,
  WIND_UP_MS,
  worstCallMs,
} from "../src/lib/timeouts";

/** A settle is one DynamoDB write, or two when its guard fails (docs/adr/0004-exact-limits.md). */
const worstSettleMs = 2 * worstCallMs(dynamoTimeouts);
/** Cold start (Lambda init) runs on API Gateway's clock, not the function's: the room left for it. */
const COLD_START_ROOM_MS = 2_000;

describe("every AWS client", () => {
  it("has a connect and a request timeout that throw, and one retry", () => {
    for (const client of [dynamoTimeouts, sagemakerTimeouts, stsTimeouts, apiGatewayTimeouts]) {
      expect(client.requestHandler.connectionTimeout).toBeGreaterThan(0);
      expect(client.requestHandler.requestTimeout).toBeGreaterThanOrEqual(
        client.requestHandler.connectionTimeout,
      );
      expect(client.requestHandler.throwOnRequestTimeout).toBe(true);
      expect(client.maxAttempts).toBe(2);
    }
  });

  it("gives DynamoDB about a second, both attempts included", () => {
    expect(worstCallMs(dynamoTimeouts)).toBeLessThanOrEqual(1_100);
  });

  it("gives a model call the whole route, up to the point where it must give up", () => {
    expect(sagemakerTimeouts.requestHandler.requestTimeout).toBe(
      functionTimeoutSeconds.modelCall * 1000 - WIND_UP_MS,
    );
  });
});

describe("function timeouts", () => {
  it("are all under API Gateway's integration timeout, which the local gateway uses too", () => {
    expect(gatewayLimits.integrationTimeoutMs).toBe(INTEGRATION_TIMEOUT_MS);
    for (const route of routes) {
      expect(route.timeoutSeconds * 1000, `${route.method} ${route.path}`).toBeLessThan(
        INTEGRATION_TIMEOUT_MS,
      );
    }
  });

  it("give chat and raw invocations the model-call timeout, every other route its kind's", () => {
    for (const route of routes) {
      const expected = route.path.startsWith("/admin/")
        ? functionTimeoutSeconds.admin
        : route.method === "POST"
          ? functionTimeoutSeconds.modelCall
          : functionTimeoutSeconds.tenantRead;
      expect(route.timeoutSeconds, `${route.method} ${route.path}`).toBe(expected);
    }
  });

  it("let the authorizer make its two rounds of DynamoDB reads with time to spare", () => {
    expect(2 * worstCallMs(dynamoTimeouts)).toBeLessThan((authorizer.timeoutSeconds * 1000) / 2);
  });
});

describe("a model call that runs out of time", () => {
  const functionMs = functionTimeoutSeconds.modelCall * 1000;
  const giveUpAt = functionMs - WIND_UP_MS;

  it("is refunded before the function's timeout, by the handler or by middy's early stop", () => {
    expect(giveUpAt + worstSettleMs).toBeLessThan(functionMs);
    expect(STOP_EARLY_MS).toBeLessThan(WIND_UP_MS);
    expect(worstSettleMs).toBeLessThan(STOP_EARLY_MS);
  });

  it("is never charged after API Gateway's 504: the latest charge lands before it, cold start included", () => {
    // A reply just before the deadline, then the settle that charges it.
    const latestChargeMs = giveUpAt + worstSettleMs;
    expect(latestChargeMs + COLD_START_ROOM_MS).toBeLessThanOrEqual(INTEGRATION_TIMEOUT_MS);
  });
});
