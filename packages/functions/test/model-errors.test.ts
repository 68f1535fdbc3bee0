/**
 * SageMaker's failures mapped by what a client can do (docs/adr/0011-retries-and-model-errors.md).
 * Each error is a real one: what Atrium's SageMaker Runtime client throws, read off the emulator's
 * wire answer. The emulator's answers are checked against the AWS SDK elsewhere; here each of
 * Atrium's errors is also compared with the SDK's for the same answer (name, message, members).
 */
import { createServer } from "node:net";
import type { Fault, SageMakerEmulator } from "@atrium/local/sagemaker-emulator";
import { startSageMakerEmulator } from "@atrium/local/sagemaker-emulator";
import {
  InvokeEndpointCommand,
  InvokeEndpointWithResponseStreamCommand,
  SageMakerRuntimeClient,
} from "@aws-sdk/client-sagemaker-runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromSageMakerError, modelTimedOut, withNote } from "../src/lib/model-errors";
import { SageMakerCallError, SageMakerRuntime } from "../src/lib/sagemaker-runtime";

const MODEL = "llama-3.1-8b-instruct";
const ENDPOINT = "chat-ep";
const plain = { compliance: [] };
const hipaa = { compliance: ["hipaa" as const] };

const credentials = { accessKeyId: "AKIDLOCALTEST", secretAccessKey: "local-secret" };

let emulator: SageMakerEmulator;
let client: SageMakerRuntime;
let sdk: SageMakerRuntimeClient;

beforeAll(async () => {
  emulator = await startSageMakerEmulator({
    resolveEndpoint: (name) => (name === ENDPOINT ? { kind: "reference" } : undefined),
  });
  client = clientAt(emulator.url);
  sdk = new SageMakerRuntimeClient({
    endpoint: emulator.url,
    region: "eu-west-1",
    credentials,
    maxAttempts: 1,
  });
});

afterAll(async () => {
  client?.destroy();
  sdk?.destroy();
  await emulator?.close();
});

function clientAt(url: string): SageMakerRuntime {
  return new SageMakerRuntime({
    endpoint: url,
    region: "eu-west-1",
    credentials: async () => credentials,
    connectionTimeout: 1_000,
    requestTimeout: 5_000,
  });
}

const body = new TextEncoder().encode(JSON.stringify({ messages: [{ role: "user", content: "hi" }] }));

/** What Atrium's client throws for one buffered call with `fault` injected (once). */
async function modelError(fault?: Fault, endpointName = ENDPOINT): Promise<unknown> {
  if (fault) emulator.injectFault(endpointName, { ...fault, times: 1 });
  return client.invokeEndpoint({ endpointName, body, contentType: "application/json" }).then(
    () => {
      throw new Error("expected the call to fail");
    },
    (err: unknown) => err,
  );
}

/** What Atrium's client throws for a stream that breaks before its first part. */
async function streamError(streamFault: "ModelStreamError" | "InternalStreamFailure"): Promise<unknown> {
  emulator.injectFault(ENDPOINT, { streamError: streamFault, afterParts: 0, times: 1 });
  try {
    const output = await client.invokeEndpointWithResponseStream({
      endpointName: ENDPOINT,
      body,
      contentType: "application/json",
    });
    for await (const _part of output.parts) {
      // Read until the exception event.
    }
  } catch (err) {
    return err;
  }
  throw new Error("expected the stream to fail");
}

/** The AWS SDK's error for the same injected fault, to compare with Atrium's. */
async function awsSdkError(fault?: Fault, endpointName = ENDPOINT): Promise<Record<string, unknown>> {
  if (fault) emulator.injectFault(endpointName, { ...fault, times: 1 });
  const command = new InvokeEndpointCommand({
    EndpointName: endpointName,
    Body: body,
    ContentType: "application/json",
  });
  return sdk.send(command).then(
    () => {
      throw new Error("expected the call to fail");
    },
    (err: Record<string, unknown>) => err,
  );
}

/** The AWS SDK's error for a stream broken before its first part. */
async function awsSdkStreamError(streamFault: "ModelStreamError" | "InternalStreamFailure") {
  emulator.injectFault(ENDPOINT, { streamError: streamFault, afterParts: 0, times: 1 });
  const command = new InvokeEndpointWithResponseStreamCommand({
    EndpointName: ENDPOINT,
    Body: body,
    ContentType: "application/json",
  });
  try {
    for await (const _event of (await sdk.send(command)).Body ?? []) {
      // Read until the exception event.
    }
  } catch (err) {
    return err as Record<string, unknown>;
  }
  throw new Error("expected the stream to fail");
}

describe("Atrium's client reads SageMaker's errors as the AWS SDK does", () => {
  it.each([
    [{ error: "ModelError", originalStatusCode: 429, retryAfterSeconds: 3 }],
    [{ error: "ModelError", originalStatusCode: 422 }],
    [{ error: "ModelError" }],
    [{ error: "ThrottlingException", retryAfterSeconds: 7 }],
    [{ error: "ModelNotReadyException" }],
    [{ error: "InternalDependencyException" }],
    [{ error: "ServiceUnavailable" }],
    [{ error: "InternalFailure" }],
  ] as const)("%o", async (fault) => {
    const ours = (await modelError(fault)) as SageMakerCallError;
    const theirs = await awsSdkError(fault);
    const response = theirs.$response as { headers: Record<string, string> };
    expect(ours).toBeInstanceOf(SageMakerCallError);
    expect({
      name: ours.name,
      message: ours.message,
      originalStatusCode: ours.originalStatusCode,
      originalMessage: ours.originalMessage,
      retryAfter: ours.retryAfter,
      notSent: ours.notSent,
    }).toEqual({
      name: theirs.name,
      message: theirs.message,
      originalStatusCode: theirs.OriginalStatusCode,
      originalMessage: theirs.OriginalMessage,
      retryAfter: response.headers["retry-after"],
      notSent: false,
    });
  });

  it.each(["no-such-endpoint", "not_a_valid_name"])("a validation error (%s)", async (endpointName) => {
    const ours = (await modelError(undefined, endpointName)) as SageMakerCallError;
    const theirs = await awsSdkError(undefined, endpointName);
    expect([ours.name, ours.message, ours.status]).toEqual([
      theirs.name,
      theirs.message,
      (theirs.$metadata as { httpStatusCode: number }).httpStatusCode,
    ]);
  });

  it.each(["ModelStreamError", "InternalStreamFailure"] as const)("a stream's %s event", async (fault) => {
    const ours = (await streamError(fault)) as SageMakerCallError;
    const theirs = await awsSdkStreamError(fault);
    expect([ours.name, ours.message]).toEqual([theirs.name, theirs.message]);
  });
});

describe("a transient failure: a status a client retries, retry-after, x-should-retry: true", () => {
  it.each([
    [{ error: "ModelError", originalStatusCode: 429 }, 429, "model_overloaded", "1"],
    [{ error: "ThrottlingException" }, 429, "endpoint_throttled", "1"],
    [{ error: "ModelNotReadyException" }, 503, "model_not_ready", "10"],
    [{ error: "InternalDependencyException" }, 503, "upstream_unavailable", "2"],
    [{ error: "ServiceUnavailable" }, 503, "upstream_unavailable", "2"],
    [{ error: "InternalFailure" }, 503, "upstream_unavailable", "2"],
  ] as const)("%o is %i %s with retry-after %s", async (fault, status, code, retryAfter) => {
    const err = fromSageMakerError(await modelError(fault), MODEL, plain);
    expect(err).toMatchObject({ status, code, type: "api_error" });
    expect(err.headers).toEqual({ "retry-after": retryAfter, "x-should-retry": "true" });
    expect(err.message).toContain(MODEL);
  });

  it("passes on the wait SageMaker's answer names in its Retry-After header", async () => {
    const throttled = await modelError({ error: "ThrottlingException", retryAfterSeconds: 7 });
    expect(fromSageMakerError(throttled, MODEL, plain).headers["retry-after"]).toBe("7");
    const overloaded = await modelError({
      error: "ModelError",
      originalStatusCode: 429,
      retryAfterSeconds: 3,
    });
    expect(fromSageMakerError(overloaded, MODEL, plain)).toMatchObject({
      status: 429,
      headers: { "retry-after": "3" },
    });
  });

  it("maps SageMaker's broken stream to 502 upstream_error, to retry", async () => {
    const err = fromSageMakerError(await streamError("InternalStreamFailure"), MODEL, plain);
    expect(err).toMatchObject({ status: 502, code: "upstream_error", headers: { "x-should-retry": "true" } });
  });
});

describe("a permanent failure: x-should-retry: false", () => {
  it("maps a model's 4xx to 400 model_rejected_request with the model's reason", async () => {
    const err = fromSageMakerError(
      await modelError({ error: "ModelError", originalStatusCode: 422 }),
      MODEL,
      plain,
    );
    expect(err).toMatchObject({ status: 400, type: "invalid_request_error", code: "model_rejected_request" });
    expect(err.message).toContain("answered 422");
    expect(err.headers).toEqual({ "x-should-retry": "false" });
  });

  it("withholds a model's own reason from a HIPAA tenant", async () => {
    const err = fromSageMakerError(
      await modelError({ error: "ModelError", originalStatusCode: 400 }),
      MODEL,
      hipaa,
    );
    expect(err).toMatchObject({ status: 400, code: "model_rejected_request" });
    expect(err.message).toContain("withheld");
    expect(err.message).not.toContain("Injected fault");
  });

  it.each([500, 503])(
    "maps a model's %i to 502 model_error: it ran, a retry would spend the GPU again",
    async (s) => {
      const err = fromSageMakerError(
        await modelError({ error: "ModelError", originalStatusCode: s }),
        MODEL,
        plain,
      );
      expect(err).toMatchObject({ status: 502, type: "api_error", code: "model_error" });
      expect(err.headers).toEqual({ "x-should-retry": "false" });
    },
  );

  it("maps a model's failure in its stream to 502 model_error", async () => {
    const err = fromSageMakerError(await streamError("ModelStreamError"), MODEL, plain);
    expect(err).toMatchObject({ status: 502, code: "model_error", headers: { "x-should-retry": "false" } });
  });

  it("maps an endpoint that does not exist to 503 endpoint_unavailable, not to retry at once", async () => {
    const err = fromSageMakerError(await modelError(undefined, "no-such-endpoint"), MODEL, plain);
    expect(err).toMatchObject({
      status: 503,
      code: "endpoint_unavailable",
      headers: { "x-should-retry": "false" },
    });
    expect(err.message).not.toContain("no-such-endpoint");
  });

  it("maps any other validation error to 400 invalid_request", async () => {
    const err = fromSageMakerError(await modelError(undefined, "not_a_valid_name"), MODEL, plain);
    expect(err).toMatchObject({
      status: 400,
      code: "invalid_request",
      headers: { "x-should-retry": "false" },
    });
  });

  it("maps the model's deadline to 504 model_timeout", () => {
    expect(modelTimedOut(MODEL)).toMatchObject({ status: 504, headers: { "x-should-retry": "false" } });
  });
});

describe("a stream given up before it was read", () => {
  it("ends with AbortError when read, and nothing is thrown at the process meanwhile", async () => {
    const stop = new AbortController();
    const output = await client.invokeEndpointWithResponseStream(
      { endpointName: ENDPOINT, body, contentType: "application/json" },
      stop.signal,
    );
    stop.abort();
    // The connection fails while nobody reads it (an unhandled 'error' would fail this run).
    await new Promise((resolve) => setTimeout(resolve, 50));
    const read = async () => {
      for await (const _part of output.parts) {
        // Nothing arrives after the abort.
      }
    };
    await expect(read()).rejects.toMatchObject({ name: "AbortError" });
  });
});

describe("a failure Atrium cannot classify", () => {
  it("maps an endpoint it could not reach to 502 upstream_error, leaving the retry to the client's policy", async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, "127.0.0.1", () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    const unreachable = clientAt(`http://127.0.0.1:${closedPort}`);
    const raw = await unreachable
      .invokeEndpoint({ endpointName: ENDPOINT, body, contentType: "application/json" })
      .catch((e: unknown) => e);
    unreachable.destroy();
    expect(raw).toMatchObject({ name: "ECONNREFUSED", notSent: true });
    const err = fromSageMakerError(raw, MODEL, plain);
    expect(err).toMatchObject({ status: 502, code: "upstream_error" });
    expect(err.headers).toEqual({});
  });
});

describe("withNote", () => {
  it("adds what Atrium tried to the message and keeps the status, code and headers", async () => {
    const err = fromSageMakerError(await modelError({ error: "ThrottlingException" }), MODEL, plain);
    const noted = withNote(err, "Atrium retried the call 2 times, the most it retries one call.");
    expect(noted).toMatchObject({ status: 429, code: "endpoint_throttled", headers: err.headers });
    expect(noted.message).toBe(
      `${err.message} Atrium retried the call 2 times, the most it retries one call.`,
    );
  });
});
