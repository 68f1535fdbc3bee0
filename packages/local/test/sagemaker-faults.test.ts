/**
 * Endpoint conditions in the SageMaker emulator: the admin-token control route over HTTP, and what
 * calls through the real SDK then get (latency, errors at a rate, broken streams, capacity).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  InvokeEndpointCommand,
  InvokeEndpointWithResponseStreamCommand,
  type ModelError,
  SageMakerRuntimeClient,
  SageMakerRuntimeServiceException,
} from "@aws-sdk/client-sagemaker-runtime";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Json } from "../../../test/support/http";
import {
  type EndpointBackend,
  type SageMakerEmulator,
  startSageMakerEmulator,
} from "../src/sagemaker-emulator";
import { INJECTABLE_ERRORS, parseConditions } from "../src/sagemaker-faults";

const ADMIN_TOKEN = "atr_admin_test-token";

/** A model container that holds every call until the test lets them all go; `arrived` counts them. */
async function startHoldingContainer() {
  let arrived = 0;
  let release = () => {};
  let released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const server: Server = createServer(async (req, res) => {
    for await (const _ of req);
    arrived += 1;
    await released;
    res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    arrived: () => arrived,
    releaseAll: () => {
      release();
      released = new Promise<void>((resolve) => {
        release = resolve;
      });
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function failureOf(promise: Promise<unknown>): Promise<SageMakerRuntimeServiceException> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof SageMakerRuntimeServiceException) return err;
    throw err;
  }
  throw new Error("expected the call to fail");
}

const chat = new TextEncoder().encode(JSON.stringify({ messages: [{ role: "user", content: "hello" }] }));

describe("endpoint conditions in the SageMaker emulator", () => {
  let emulator: SageMakerEmulator;
  let client: SageMakerRuntimeClient;
  let container: Awaited<ReturnType<typeof startHoldingContainer>>;
  /** The chances the emulator draws next (error rate, jitter); empty means 0.5. */
  const chances: number[] = [];

  beforeAll(async () => {
    container = await startHoldingContainer();
    const backends = new Map<string, EndpointBackend>([
      ["ref-ep", { kind: "reference" }],
      ["held-ep", { kind: "container", url: container.url }],
    ]);
    emulator = await startSageMakerEmulator({
      resolveEndpoint: (name) => backends.get(name),
      adminToken: ADMIN_TOKEN,
      random: () => chances.shift() ?? 0.5,
    });
    client = new SageMakerRuntimeClient({
      endpoint: emulator.url,
      region: "eu-west-1",
      credentials: { accessKeyId: "AKIDLOCALTEST", secretAccessKey: "local-secret" },
      maxAttempts: 1,
    });
  });

  afterEach(() => {
    emulator.clearFaults();
    chances.length = 0;
  });

  afterAll(async () => {
    client.destroy();
    await emulator.close();
    await container.close();
  });

  const invoke = (endpointName: string) =>
    client.send(
      new InvokeEndpointCommand({ EndpointName: endpointName, Body: chat, ContentType: "application/json" }),
    );

  const control = async (
    method: string,
    path: string,
    body?: unknown,
    token: string | null = ADMIN_TOKEN,
  ) => {
    const response = await fetch(`${emulator.url}/_atrium/faults${path}`, {
      method,
      headers: {
        ...(token === null ? {} : { authorization: `Bearer ${token}` }),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
    });
    const answer: { status: number; body: Json } = { status: response.status, body: await response.json() };
    return answer;
  };

  describe("the control route", () => {
    it("refuses a call without the admin token (401) or with another (403), and changes nothing", async () => {
      const missing = await control("PUT", "/ref-ep", { capacity: 1 }, null);
      expect(missing.status).toBe(401);
      expect(missing.body.error).toMatchObject({
        type: "authentication_error",
        code: "missing_admin_credentials",
      });
      const wrong = await control("PUT", "/ref-ep", { capacity: 1 }, "atr_admin_guess");
      expect(wrong.status).toBe(403);
      expect(wrong.body.error.code).toBe("invalid_admin_credentials");
      // An empty bearer token is a wrong one, not a missing one.
      expect((await control("GET", "/ref-ep", undefined, "")).status).toBe(403);
      expect(emulator.faultState("ref-ep").conditions).toEqual({});
    });

    it("sets, reads and clears an endpoint's conditions, completing the defaults", async () => {
      const set = await control("PUT", "/ref-ep", {
        latencyMs: 20,
        jitterMs: 5,
        errorRate: 0.25,
        capacity: 3,
      });
      expect(set).toEqual({
        status: 200,
        body: {
          endpointName: "ref-ep",
          conditions: {
            latencyMs: 20,
            jitterMs: 5,
            errorRate: 0.25,
            error: "ThrottlingException",
            capacity: 3,
          },
          inFlight: 0,
        },
      });
      expect((await control("GET", "")).body).toEqual({ endpoints: [set.body] });
      // PUT replaces: what is not sent again is gone.
      const replaced = await control("PUT", "/ref-ep", { error: "ModelError", originalStatusCode: 429 });
      expect(replaced.body.conditions).toEqual({
        errorRate: 1,
        error: "ModelError",
        originalStatusCode: 429,
      });
      expect((await control("DELETE", "/ref-ep")).body).toEqual({ cleared: ["ref-ep"] });
      expect((await control("GET", "/ref-ep")).body).toEqual({
        endpointName: "ref-ep",
        conditions: {},
        inFlight: 0,
      });
      expect((await control("GET", "")).body).toEqual({ endpoints: [] });
    });

    it("answers an unknown endpoint with 404 and bad conditions with 400 naming the field", async () => {
      const unknown = await control("PUT", "/no-such-ep", { capacity: 1 });
      expect(unknown.status).toBe(404);
      expect(unknown.body.error).toMatchObject({ code: "unknown_endpoint", param: "endpointName" });
      expect(unknown.body.error.message).toContain("no-such-ep");
      for (const [body, param] of [
        [{ errorRate: 1.5 }, "errorRate"],
        [{ latencyMs: -1 }, "latencyMs"],
        [{ latencyMs: 100, jitterMs: 101 }, "jitterMs"],
        [{ capacity: 0 }, "capacity"],
        [{ capacity: 1.5 }, "capacity"],
        [{ error: "OutOfCheese" }, "error"],
        [{ error: "ThrottlingException", originalStatusCode: 429 }, "originalStatusCode"],
        [{ afterParts: 2 }, "afterParts"],
        [{ latency: 100 }, "latency"],
      ] as const) {
        const refused = await control("PUT", "/ref-ep", body);
        expect(refused.status, JSON.stringify(body)).toBe(400);
        expect(refused.body.error).toMatchObject({
          type: "invalid_request_error",
          code: "invalid_fault",
          param,
        });
      }
      const notJson = await control("PUT", "/ref-ep", "{capacity:");
      expect(notJson.status).toBe(400);
      expect((await control("POST", "/ref-ep", {})).status).toBe(405);
      expect(emulator.faultState("ref-ep").conditions).toEqual({});
    });

    it("does not exist on an emulator started without an admin token", async () => {
      const bare = await startSageMakerEmulator({ resolveEndpoint: () => ({ kind: "reference" }) });
      try {
        const response = await fetch(`${bare.url}/_atrium/faults`, {
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        });
        expect(response.status).toBe(404);
        expect(response.headers.get("x-amzn-errortype")).toBe("UnknownOperationException");
      } finally {
        await bare.close();
      }
    });
  });

  describe("calls under conditions", () => {
    it("fails exactly the calls whose drawn chance falls under the error rate", async () => {
      emulator.setConditions("ref-ep", parseConditions({ errorRate: 0.3, error: "ServiceUnavailable" }));
      chances.push(0.1, 0.9, 0.29, 0.3);
      expect((await failureOf(invoke("ref-ep"))).name).toBe("ServiceUnavailable");
      await expect(invoke("ref-ep")).resolves.toBeDefined();
      expect((await failureOf(invoke("ref-ep"))).name).toBe("ServiceUnavailable");
      await expect(invoke("ref-ep")).resolves.toBeDefined();
    });

    it.each(INJECTABLE_ERRORS)("answers %s when set on every call", async (error) => {
      await control("PUT", "/ref-ep", { error });
      expect((await failureOf(invoke("ref-ep"))).name).toBe(error);
    });

    it("answers ModelError with the status the model is said to have answered", async () => {
      await control("PUT", "/ref-ep", { error: "ModelError", originalStatusCode: 429 });
      const err = (await failureOf(invoke("ref-ep"))) as ModelError;
      expect(err.$metadata.httpStatusCode).toBe(424);
      expect(err.OriginalStatusCode).toBe(429);
    });

    it("delays each call by the latency, jittered by the drawn chance (at least, never less)", async () => {
      await control("PUT", "/ref-ep", { latencyMs: 150, jitterMs: 100 });
      // A chance of 1 draws the full +100 ms.
      chances.push(1);
      const started = performance.now();
      await invoke("ref-ep");
      expect(performance.now() - started).toBeGreaterThanOrEqual(249);
    });

    it("ends streamed calls with the stream error after the given parts", async () => {
      await control("PUT", "/ref-ep", { streamError: "InternalStreamFailure", afterParts: 2 });
      const out = await client.send(
        new InvokeEndpointWithResponseStreamCommand({
          EndpointName: "ref-ep",
          Body: new TextEncoder().encode(
            JSON.stringify({ messages: [{ role: "user", content: "hi" }], stream: true }),
          ),
          ContentType: "application/json",
        }),
      );
      let parts = 0;
      const broke = await failureOf(
        (async () => {
          for await (const event of out.Body ?? []) if (event.PayloadPart) parts += 1;
        })(),
      );
      expect(broke.name).toBe("InternalStreamFailure");
      expect(parts).toBe(2);
    });

    it("refuses the call beyond capacity at once with ThrottlingException while the others are held", async () => {
      await control("PUT", "/held-ep", { capacity: 2 });
      const held = [invoke("held-ep"), invoke("held-ep")];
      await expect.poll(container.arrived, { interval: 10 }).toBe(2);
      expect((await control("GET", "/held-ep")).body.inFlight).toBe(2);

      const refused = await failureOf(invoke("held-ep"));
      expect(refused.name).toBe("ThrottlingException");
      expect(refused.$metadata.httpStatusCode).toBe(400);
      // Refused at the front end: the container never saw it.
      expect(container.arrived()).toBe(2);
      // Another endpoint is not affected.
      await expect(invoke("ref-ep")).resolves.toBeDefined();

      container.releaseAll();
      await Promise.all(held);
      expect((await control("GET", "/held-ep")).body.inFlight).toBe(0);
      const next = invoke("held-ep");
      await expect.poll(container.arrived, { interval: 10 }).toBe(3);
      container.releaseAll();
      await expect(next).resolves.toBeDefined();
    });

    it("gives a place back when a call fails by an injected error", async () => {
      await control("PUT", "/ref-ep", { capacity: 1, error: "InternalFailure" });
      expect((await failureOf(invoke("ref-ep"))).name).toBe("InternalFailure");
      expect((await failureOf(invoke("ref-ep"))).name).toBe("InternalFailure");
      expect(emulator.faultState("ref-ep").inFlight).toBe(0);
    });

    it("applies a test's queued fault before the standing conditions", async () => {
      await control("PUT", "/ref-ep", { error: "InternalFailure" });
      emulator.injectFault("ref-ep", { error: "ModelNotReadyException", times: 1 });
      expect((await failureOf(invoke("ref-ep"))).name).toBe("ModelNotReadyException");
      expect((await failureOf(invoke("ref-ep"))).name).toBe("InternalFailure");
      await control("DELETE", "");
      await expect(invoke("ref-ep")).resolves.toBeDefined();
    });
  });
});
