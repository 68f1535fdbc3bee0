import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { AtriumError } from "@atrium/core/errors";
import { TenantTable } from "@atrium/core/tables";
import type { Tenant } from "@atrium/core/tenant";
import type { TenantContext } from "@atrium/functions/lib/middleware";
import { ensureTable, type LocalDynamo, localDynamoClient } from "@atrium/local/dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedDynamo, uniqueTableName } from "../support/dynamodb";
import { setHandlerEnvironment } from "../support/handler-environment";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy";

const TABLE = uniqueTableName("atrium-test-client-timeouts");

let dynamo: LocalDynamo;
let proxy: TcpProxy;
/** A SageMaker Runtime endpoint that takes every call and never answers. */
let silentModel: Server;
let modelCalls = 0;
let clients: typeof import("@atrium/functions/lib/clients");
let unavailable: typeof import("@atrium/functions/lib/aws-unavailable");
let invokeModel: typeof import("@atrium/functions/lib/invoke-model").invokeModel;
let upkeep: typeof import("@atrium/functions/lib/call-upkeep");

beforeAll(async () => {
  dynamo = sharedDynamo();
  await ensureTable(localDynamoClient(dynamo.url), TABLE, TenantTable);
  proxy = await startTcpProxy(dynamo.url);
  silentModel = createServer(() => {
    modelCalls += 1;
  });
  await new Promise<void>((resolve) => silentModel.listen(0, "127.0.0.1", resolve));
  setHandlerEnvironment({
    dynamodbUrl: proxy.url,
    tenantsTable: TABLE,
    sagemakerUrl: `http://127.0.0.1:${(silentModel.address() as AddressInfo).port}`,
  });
  delete process.env.ATRIUM_TENANT_ROLE_ARN;
  clients = await import("@atrium/functions/lib/clients");
  unavailable = await import("@atrium/functions/lib/aws-unavailable");
  ({ invokeModel } = await import("@atrium/functions/lib/invoke-model"));
  upkeep = await import("@atrium/functions/lib/call-upkeep");
});

afterAll(async () => {
  silentModel?.closeAllConnections();
  silentModel?.close();
  await proxy?.close();
  await dynamo?.close();
});

const getItem = (table = TABLE) =>
  clients.documentClient.get({ TableName: table, Key: { pk: "TENANT#tn-x#", sk: "PROFILE" } });

describe("the DynamoDB client", () => {
  it("answers through the proxy while DynamoDB is well", async () => {
    await proxy.setMode("forward");
    expect((await getItem()).Item).toBeUndefined();
  });

  it("gives up on a hung DynamoDB after two attempts, with an error the edge answers 503", async () => {
    await proxy.setMode("hang");
    const err = await getItem().catch((e: unknown) => e);
    expect(err).toMatchObject({ name: "TimeoutError", attempts: 2 });
    expect(unavailable.isAwsUnavailable(err)).toBe(true);
  });

  it("gives up on a refusing DynamoDB after two attempts, with an error the edge answers 503", async () => {
    await proxy.setMode("refuse");
    const err = await getItem().catch((e: unknown) => e);
    expect(err).toMatchObject({ name: "ECONNREFUSED", attempts: 2 });
    expect(unavailable.isAwsUnavailable(err)).toBe(true);
  });

  it("does not take a request DynamoDB rejected for an outage", async () => {
    await proxy.setMode("forward");
    const err = await getItem("no-such-table").catch((e: unknown) => e);
    expect(err).toMatchObject({ name: "ResourceNotFoundException" });
    expect(unavailable.isAwsUnavailable(err)).toBe(false);
  });
});

describe("a model call", () => {
  const tenant = { id: "tn-slow", compliance: [] } as unknown as Tenant;
  const route = { kind: "shared", model: "llama-3.1-8b-instruct", endpointName: "atrium-shared-llama-8b" };
  /** A buffered call to the silent model with a deadline `ms` away; resolves with its error. */
  const callModel = (ms: number) => {
    const context = {
      tenant,
      timing: { startedAt: performance.now(), modelMs: 0 },
      deadline: AbortSignal.timeout(ms),
      deadlineAt: performance.now() + ms,
    } as unknown as TenantContext;
    return invokeModel(
      route as Parameters<typeof invokeModel>[0],
      { body: Buffer.from("{}"), contentType: "application/json" },
      context,
    ).catch((e: unknown) => e);
  };

  it("stops at the call's deadline, once, with Atrium's 504 model_timeout", async () => {
    const before = modelCalls;
    const err = await callModel(300);
    expect(err).toBeInstanceOf(AtriumError);
    expect(err).toMatchObject({ status: 504, code: "model_timeout", headers: { "x-should-retry": "false" } });
    // An abandoned call is not retried: the model saw it once.
    expect(modelCalls - before).toBe(1);
  });

  it("starts the upkeep the call found due once its request has gone, while the model has not answered", async () => {
    let requestsAtUpkeep: number | undefined;
    const before = modelCalls;
    upkeep.whenCallAllows("read a stale view", async () => {
      requestsAtUpkeep = modelCalls - before;
    });
    const call = callModel(1_000);
    expect(requestsAtUpkeep).toBeUndefined();
    // The silent model never answers: the upkeep ran on the request alone, not on an answer.
    await expect.poll(() => requestsAtUpkeep, { timeout: 900 }).toBeDefined();
    expect(await call).toMatchObject({ status: 504, code: "model_timeout" });
    await upkeep.upkeepDone();
  });
});
