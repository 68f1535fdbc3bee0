/**
 * The emulator's injectable errors beyond their names, as the unmodified SDK reads them:
 * InternalDependencyException (HTTP 530, a Message member), a ModelError carrying the container's
 * own status, and a Retry-After header on any injected error.
 */
import {
  InternalDependencyException,
  InvokeEndpointCommand,
  ModelError,
  SageMakerRuntimeClient,
} from "@aws-sdk/client-sagemaker-runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SageMakerEmulator, startSageMakerEmulator } from "../src/sagemaker-emulator";

const ENDPOINT = "faulty-ep";
let emulator: SageMakerEmulator;
let client: SageMakerRuntimeClient;

beforeAll(async () => {
  emulator = await startSageMakerEmulator({ resolveEndpoint: () => ({ kind: "reference" }) });
  client = new SageMakerRuntimeClient({
    endpoint: emulator.url,
    region: "eu-west-1",
    credentials: { accessKeyId: "AKIDLOCALTEST", secretAccessKey: "local-secret" },
    maxAttempts: 1,
  });
});

afterAll(async () => {
  client?.destroy();
  await emulator?.close();
});

const invoke = () =>
  client
    .send(
      new InvokeEndpointCommand({
        EndpointName: ENDPOINT,
        ContentType: "application/json",
        Body: new TextEncoder().encode(JSON.stringify({ messages: [{ role: "user", content: "hi" }] })),
      }),
    )
    .then(
      () => {
        throw new Error("expected the call to fail");
      },
      (err: unknown) => err as Error & { $metadata: { httpStatusCode?: number } },
    );

describe("injected errors", () => {
  it("answers InternalDependencyException with HTTP 530, its Message member read as the message", async () => {
    emulator.injectFault(ENDPOINT, { error: "InternalDependencyException", times: 1 });
    const err = await invoke();
    expect(err).toBeInstanceOf(InternalDependencyException);
    expect(err.$metadata.httpStatusCode).toBe(530);
    // The SDK reads the body's Message member into the exception's message.
    expect(err.message).toBe("An internal dependency of the endpoint failed (injected fault).");
  });

  it("lets a ModelError carry the container's status, 500 when none is given", async () => {
    emulator.injectFault(ENDPOINT, { error: "ModelError", originalStatusCode: 429, times: 1 });
    emulator.injectFault(ENDPOINT, { error: "ModelError", times: 1 });
    const overloaded = await invoke();
    expect(overloaded).toBeInstanceOf(ModelError);
    expect(overloaded.$metadata.httpStatusCode).toBe(424);
    expect((overloaded as ModelError).OriginalStatusCode).toBe(429);
    expect(overloaded.message).toContain("client error (429)");
    const failed = await invoke();
    expect((failed as ModelError).OriginalStatusCode).toBe(500);
    expect(failed.message).toContain("server error (500)");
  });

  it("sends a Retry-After header when asked, and none otherwise", async () => {
    emulator.injectFault(ENDPOINT, { error: "ThrottlingException", retryAfterSeconds: 4, times: 1 });
    emulator.injectFault(ENDPOINT, { error: "ThrottlingException", times: 1 });
    const headersOf = (err: unknown) =>
      (err as { $response?: { headers: Record<string, string> } }).$response?.headers ?? {};
    expect(headersOf(await invoke())["retry-after"]).toBe("4");
    expect(headersOf(await invoke())["retry-after"]).toBeUndefined();
  });
});
