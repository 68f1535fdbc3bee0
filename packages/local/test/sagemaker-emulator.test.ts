import { execFile, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  InvokeEndpointCommand,
  type InvokeEndpointCommandInput,
  ModelError,
  SageMakerRuntimeClient,
  SageMakerRuntimeServiceException,
  ValidationError,
} from "@aws-sdk/client-sagemaker-runtime";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { rawRequest } from "../../../test/support/raw-http";
import { countTokens } from "../src/reference-model";
import {
  type EndpointBackend,
  type Fault,
  MAX_PAYLOAD_BYTES,
  pingContainer,
  type SageMakerEmulator,
  startSageMakerEmulator,
} from "../src/sagemaker-emulator";

interface ChatCompletion {
  model: string;
  choices: { message: { content: string }; finish_reason: string }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

interface ContainerEcho {
  contentType: string | null;
  accept: string | null;
  customAttributes: string | null;
  targetModel: string | null;
  body: string;
}

const decoder = new TextDecoder();
const execFileAsync = promisify(execFile);
const hasAws = spawnSync("aws", ["--version"], { encoding: "utf8" }).status === 0;

/** A tiny model container: GET /ping, POST /invocations echoing what it received; body "fail" answers 500. */
async function startContainer(): Promise<{ server: Server; url: string }> {
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    if (req.method === "GET" && req.url === "/ping") {
      res.writeHead(200).end();
    } else if (req.method === "POST" && req.url === "/invocations" && body === "fail") {
      res.writeHead(500, { "content-type": "text/plain" }).end("boom: out of memory");
    } else if (req.method === "POST" && req.url === "/invocations") {
      const echo: ContainerEcho = {
        contentType: req.headers["content-type"] ?? null,
        accept: req.headers.accept ?? null,
        customAttributes: (req.headers["x-amzn-sagemaker-custom-attributes"] as string | undefined) ?? null,
        targetModel: (req.headers["x-amzn-sagemaker-target-model"] as string | undefined) ?? null,
        body,
      };
      res.writeHead(200, {
        "content-type": "application/vnd.echo+json",
        "x-amzn-sagemaker-custom-attributes": `seen=${echo.customAttributes ?? "none"}`,
      });
      res.end(JSON.stringify(echo));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** A port nothing listens on: bind, note it, release it. */
async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

function clientFor(emulator: SageMakerEmulator, maxAttempts = 1): SageMakerRuntimeClient {
  return new SageMakerRuntimeClient({
    endpoint: emulator.url,
    region: "eu-west-1",
    credentials: { accessKeyId: "AKIDLOCALTEST", secretAccessKey: "local-secret" },
    maxAttempts,
  });
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

const chatBody = (text: string, extra: Record<string, unknown> = {}) =>
  new TextEncoder().encode(JSON.stringify({ messages: [{ role: "user", content: text }], ...extra }));

describe("SageMaker emulator over the real SDK", () => {
  let emulator: SageMakerEmulator;
  let client: SageMakerRuntimeClient;
  let container: { server: Server; url: string };
  let unreachable: string;
  const resolved: string[] = [];

  beforeAll(async () => {
    container = await startContainer();
    unreachable = await deadUrl();
    const backends = new Map<string, EndpointBackend>([
      ["chat-ep", { kind: "reference" }],
      ["faulty-ep", { kind: "reference" }],
      ["container-ep", { kind: "container", url: container.url }],
      ["dead-ep", { kind: "container", url: unreachable }],
    ]);
    emulator = await startSageMakerEmulator({
      resolveEndpoint: async (name) => {
        resolved.push(name);
        return backends.get(name);
      },
    });
    client = clientFor(emulator);
  });

  afterEach(() => emulator.clearFaults());

  afterAll(async () => {
    client.destroy();
    await emulator.close();
    await new Promise<void>((resolve) => container.server.close(() => resolve()));
  });

  const invoke = (input: Partial<InvokeEndpointCommandInput> & { EndpointName: string }, via = client) =>
    via.send(
      new InvokeEndpointCommand({ Body: chatBody("hello"), ContentType: "application/json", ...input }),
    );

  it("listens on a free loopback port by default", () => {
    expect(emulator.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it("answers a chat call with usage that matches countTokens", async () => {
    const out = await invoke({
      EndpointName: "chat-ep",
      Body: chatBody("How many tokens is this, exactly?"),
    });
    expect(out.$metadata.httpStatusCode).toBe(200);
    expect(out.$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(out.ContentType).toBe("application/json");
    expect(out.InvokedProductionVariant).toBe("AllTraffic");
    const body = JSON.parse(decoder.decode(out.Body)) as ChatCompletion;
    const content = body.choices[0]?.message.content ?? "";
    expect(body.model).toBe("chat-ep");
    expect(body.usage.prompt_tokens).toBe(
      countTokens("user") + countTokens("How many tokens is this, exactly?"),
    );
    expect(body.usage.completion_tokens).toBe(countTokens(content));
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
  });

  it("cuts to max_tokens through the wire too", async () => {
    const out = await invoke({ EndpointName: "chat-ep", Body: chatBody("hi", { max_tokens: 3 }) });
    const body = JSON.parse(decoder.decode(out.Body)) as ChatCompletion;
    expect(body.usage.completion_tokens).toBe(3);
    expect(countTokens(body.choices[0]?.message.content ?? "")).toBe(3);
    expect(body.choices[0]?.finish_reason).toBe("length");
  });

  it("passes TargetModel and InferenceComponentName to the model and the invocation record", async () => {
    const before = emulator.invocations("chat-ep").length;
    const body = chatBody("route me");
    const out = await invoke({
      EndpointName: "chat-ep",
      Body: body,
      TargetModel: "model-a.tar.gz",
      InferenceComponentName: "ic-a",
      TargetVariant: "blue",
    });
    const reply = JSON.parse(decoder.decode(out.Body)) as ChatCompletion;
    expect(reply.model).toBe("model-a.tar.gz");
    expect(reply.choices[0]?.message.content).toContain("model-a.tar.gz");
    expect(reply.choices[0]?.message.content).toContain("ic-a");
    expect(out.InvokedProductionVariant).toBe("blue");
    const records = emulator.invocations("chat-ep");
    expect(records).toHaveLength(before + 1);
    expect(records.at(-1)).toMatchObject({
      endpointName: "chat-ep",
      targetModel: "model-a.tar.gz",
      inferenceComponentName: "ic-a",
      contentType: "application/json",
      bytes: body.length,
    });
    expect(records.at(-1)?.at).toBeGreaterThan(Date.now() - 60_000);

    const componentOnly = await invoke({ EndpointName: "chat-ep", InferenceComponentName: "ic-b" });
    expect((JSON.parse(decoder.decode(componentOnly.Body)) as ChatCompletion).model).toBe("ic-b");
  });

  it("raises ValidationError 400 for an endpoint that does not exist, and records nothing", async () => {
    const err = await failureOf(invoke({ EndpointName: "no-such-ep" }));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.name).toBe("ValidationError");
    expect(err.$metadata.httpStatusCode).toBe(400);
    expect(err.message).toBe("Endpoint no-such-ep of account 000000000000 not found.");
    expect(err.$fault).toBe("client");
    expect(emulator.invocations("no-such-ep")).toEqual([]);
  });

  it("rejects a malformed endpoint name with ValidationError before resolving it", async () => {
    const err = await failureOf(invoke({ EndpointName: "bad_name" }));
    expect(err.name).toBe("ValidationError");
    expect(err.$metadata.httpStatusCode).toBe(400);
    expect(resolved).not.toContain("bad_name");
  });

  it("turns a reference-model 400 into ModelError 424 with OriginalStatusCode 400", async () => {
    const err = await failureOf(invoke({ EndpointName: "chat-ep", Body: chatBody("hi", { max_tokens: 0 }) }));
    expect(err).toBeInstanceOf(ModelError);
    expect(err.$metadata.httpStatusCode).toBe(424);
    const modelError = err as ModelError;
    expect(modelError.OriginalStatusCode).toBe(400);
    expect(modelError.OriginalMessage).toContain("max_tokens");
    expect(modelError.LogStreamArn).toBe(
      "arn:aws:logs:eu-west-1:000000000000:log-group:/aws/sagemaker/Endpoints/chat-ep",
    );
  });

  it("round-trips a binary body byte for byte", async () => {
    const payload = randomBytes(1024 * 1024 + 7);
    const out = await invoke({
      EndpointName: "chat-ep",
      Body: payload,
      ContentType: "application/octet-stream",
    });
    expect(JSON.parse(decoder.decode(out.Body))).toEqual({
      endpoint: "chat-ep",
      bytes: payload.length,
      sha256: createHash("sha256").update(payload).digest("hex"),
    });
    expect(emulator.invocations("chat-ep").at(-1)).toMatchObject({
      bytes: payload.length,
      contentType: "application/octet-stream",
    });
  });

  it("rejects a body over the 25 MB limit with ValidationError", async () => {
    const before = emulator.invocations().length;
    const payload = Buffer.alloc(MAX_PAYLOAD_BYTES + 1);
    const err = await failureOf(
      invoke({ EndpointName: "chat-ep", Body: payload, ContentType: "application/x" }),
    );
    expect(err.name).toBe("ValidationError");
    expect(err.$metadata.httpStatusCode).toBe(400);
    expect(emulator.invocations()).toHaveLength(before);
    // Exactly at the limit is still accepted.
    const ok = await invoke({
      EndpointName: "chat-ep",
      Body: Buffer.alloc(MAX_PAYLOAD_BYTES),
      ContentType: "a/b",
    });
    expect(JSON.parse(decoder.decode(ok.Body))).toMatchObject({ bytes: MAX_PAYLOAD_BYTES });
  });

  it("answers unknown routes with a 404 JSON error", async () => {
    for (const [method, path] of [
      ["GET", "/"],
      ["GET", "/endpoints/chat-ep/invocations"],
      ["POST", "/endpoints/chat-ep/async-invocations"],
    ] as const) {
      const res = await fetch(`${emulator.url}${path}`, {
        method,
        ...(method === "POST" ? { body: "x" } : {}),
      });
      expect(res.status).toBe(404);
      expect(res.headers.get("content-type")).toBe("application/json");
      expect(res.headers.get("x-amzn-errortype")).toBe("UnknownOperationException");
      expect(((await res.json()) as { Message: string }).Message).toContain(path);
    }
  });

  it("takes prototype names as ordinary endpoint and header names", async () => {
    const chat = JSON.stringify({ messages: [{ role: "user", content: "hi" }] });
    const unknown = await rawRequest(emulator.url, "POST /endpoints/constructor/invocations HTTP/1.1", [
      "Content-Type: application/json",
    ]);
    expect(unknown.status).toBe(400);
    expect(JSON.parse(unknown.body).Message).toBe("Endpoint constructor of account 000000000000 not found.");
    const invalid = await rawRequest(emulator.url, "POST /endpoints/__proto__/invocations HTTP/1.1", []);
    expect(invalid.headers.get("x-amzn-errortype")).toEqual(["ValidationError"]);
    const answered = await rawRequest(
      emulator.url,
      "POST /endpoints/chat-ep/invocations HTTP/1.1",
      [
        "Content-Type: application/json",
        ...Object.getOwnPropertyNames(Object.prototype).map((n) => `${n}: x`),
      ],
      chat,
    );
    expect(answered.status).toBe(200);
    expect(JSON.parse(answered.body)).toMatchObject({ object: "chat.completion" });
  });

  describe("fault injection", () => {
    it.each([
      ["ModelError", 424],
      ["ThrottlingException", 400],
      ["ServiceUnavailable", 503],
      ["InternalFailure", 500],
      ["ModelNotReadyException", 429],
    ] as const)("%s surfaces as that SDK exception with status %i", async (error, status) => {
      emulator.injectFault("faulty-ep", { error, times: 1 });
      const err = await failureOf(invoke({ EndpointName: "faulty-ep" }));
      expect(err.name).toBe(error);
      expect(err.$metadata.httpStatusCode).toBe(status);
      expect(err.message.length).toBeGreaterThan(0);
      if (error === "ModelError") {
        expect((err as ModelError).OriginalStatusCode).toBe(500);
        expect((err as ModelError).LogStreamArn).toContain("/aws/sagemaker/Endpoints/faulty-ep");
      }
      // times: 1 has run out, so the next call goes through.
      await expect(invoke({ EndpointName: "faulty-ep" })).resolves.toMatchObject({
        ContentType: "application/json",
      });
    });

    it("delays the answer by latencyMs", async () => {
      emulator.injectFault("faulty-ep", { latencyMs: 250 });
      const started = performance.now();
      await invoke({ EndpointName: "faulty-ep" });
      expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    });

    it("applies a fault for `times` calls and then stops", async () => {
      const before = emulator.invocations("faulty-ep").length;
      emulator.injectFault("faulty-ep", { error: "ServiceUnavailable", times: 2 });
      expect((await failureOf(invoke({ EndpointName: "faulty-ep" }))).name).toBe("ServiceUnavailable");
      expect((await failureOf(invoke({ EndpointName: "faulty-ep" }))).name).toBe("ServiceUnavailable");
      await expect(invoke({ EndpointName: "faulty-ep" })).resolves.toBeDefined();
      // Faulted calls did reach the endpoint, so they are recorded.
      expect(emulator.invocations("faulty-ep")).toHaveLength(before + 3);
    });

    it("queues faults first in, first out, and only for the named endpoint", async () => {
      emulator.injectFault("faulty-ep", { error: "ThrottlingException", times: 1 });
      emulator.injectFault("faulty-ep", { error: "ModelNotReadyException", times: 1 });
      await expect(invoke({ EndpointName: "chat-ep" })).resolves.toBeDefined();
      expect((await failureOf(invoke({ EndpointName: "faulty-ep" }))).name).toBe("ThrottlingException");
      expect((await failureOf(invoke({ EndpointName: "faulty-ep" }))).name).toBe("ModelNotReadyException");
      await expect(invoke({ EndpointName: "faulty-ep" })).resolves.toBeDefined();
    });

    it("keeps a fault without `times` until it is cleared", async () => {
      emulator.injectFault("faulty-ep", { error: "InternalFailure" });
      for (let i = 0; i < 3; i++) {
        expect((await failureOf(invoke({ EndpointName: "faulty-ep" }))).name).toBe("InternalFailure");
      }
      emulator.clearFaults("faulty-ep");
      await expect(invoke({ EndpointName: "faulty-ep" })).resolves.toBeDefined();
    });

    it("lets the SDK retry throttling but not ModelError", async () => {
      const retrying = clientFor(emulator, 3);
      try {
        const before = emulator.invocations("faulty-ep").length;
        emulator.injectFault("faulty-ep", { error: "ThrottlingException", times: 1 });
        const out = await invoke({ EndpointName: "faulty-ep" }, retrying);
        expect(out.$metadata.attempts).toBe(2);
        expect(emulator.invocations("faulty-ep")).toHaveLength(before + 2);

        emulator.injectFault("faulty-ep", { error: "ModelError", times: 1 });
        const err = await failureOf(invoke({ EndpointName: "faulty-ep" }, retrying));
        expect(err.name).toBe("ModelError");
        expect(err.$metadata.attempts).toBe(1);
        expect(emulator.invocations("faulty-ep")).toHaveLength(before + 3);
      } finally {
        retrying.destroy();
      }
    });
  });

  describe("container endpoints", () => {
    it("pings a live container and reports a dead one", async () => {
      expect(await pingContainer(container.url)).toBe(true);
      expect(await pingContainer(unreachable)).toBe(false);
    });

    it("forwards body, content types and SageMaker headers, and returns the container's answer", async () => {
      const out = await invoke({
        EndpointName: "container-ep",
        Body: new TextEncoder().encode("a,b,c"),
        ContentType: "text/csv",
        Accept: "application/vnd.echo+json",
        CustomAttributes: "trace=1",
        TargetModel: "m1.tar.gz",
      });
      expect(out.ContentType).toBe("application/vnd.echo+json");
      expect(out.CustomAttributes).toBe("seen=trace=1");
      const echo = JSON.parse(decoder.decode(out.Body)) as ContainerEcho;
      expect(echo).toEqual({
        contentType: "text/csv",
        accept: "application/vnd.echo+json",
        customAttributes: "trace=1",
        targetModel: "m1.tar.gz",
        body: "a,b,c",
      });
      expect(emulator.invocations("container-ep").at(-1)).toMatchObject({
        targetModel: "m1.tar.gz",
        bytes: 5,
      });
    });

    it("turns a container 500 into ModelError 424 with the original status and message", async () => {
      const err = await failureOf(
        invoke({
          EndpointName: "container-ep",
          Body: new TextEncoder().encode("fail"),
          ContentType: "text/plain",
        }),
      );
      expect(err).toBeInstanceOf(ModelError);
      expect(err.$metadata.httpStatusCode).toBe(424);
      expect((err as ModelError).OriginalStatusCode).toBe(500);
      expect((err as ModelError).OriginalMessage).toBe("boom: out of memory");
      expect(err.message).toContain("(500)");
    });

    it("turns an unreachable container into ModelError 424 without an original status", async () => {
      const err = await failureOf(invoke({ EndpointName: "dead-ep" }));
      expect(err.name).toBe("ModelError");
      expect(err.$metadata.httpStatusCode).toBe(424);
      expect((err as ModelError).OriginalStatusCode).toBeUndefined();
      expect(err.message).toMatch(/could not reach the container/);
    });
  });
});

describe("closing the emulator", () => {
  it("stops accepting but lets an in-flight call finish", async () => {
    const emulator = await startSageMakerEmulator({ resolveEndpoint: () => ({ kind: "reference" }) });
    const client = clientFor(emulator);
    const fault: Fault = { latencyMs: 500 };
    emulator.injectFault("slow-ep", fault);
    const call = client.send(
      new InvokeEndpointCommand({
        EndpointName: "slow-ep",
        Body: chatBody("slow"),
        ContentType: "application/json",
      }),
    );
    // Recorded before its injected latency: the call is in flight when close() begins.
    await expect.poll(() => emulator.invocations("slow-ep").length, { interval: 10 }).toBe(1);
    await emulator.close();
    const out = await call;
    expect(out.$metadata.httpStatusCode).toBe(200);
    expect(JSON.parse(decoder.decode(out.Body))).toMatchObject({ object: "chat.completion" });
    await expect(
      fetch(`${emulator.url}/endpoints/slow-ep/invocations`, { method: "POST" }),
    ).rejects.toThrow();
    client.destroy();
  });
});

describe("AWS CLI against the emulator", () => {
  it.skipIf(!hasAws)("invokes an endpoint with `aws sagemaker-runtime invoke-endpoint`", async () => {
    const emulator = await startSageMakerEmulator({
      resolveEndpoint: (name) => (name === "cli-ep" ? { kind: "reference" } : undefined),
    });
    const dir = await mkdtemp(join(tmpdir(), "atrium-sm-cli-"));
    const isV2 = /^aws-cli\/2/.test(spawnSync("aws", ["--version"], { encoding: "utf8" }).stdout);
    const env = {
      ...process.env,
      AWS_ACCESS_KEY_ID: "AKIDLOCALTEST",
      AWS_SECRET_ACCESS_KEY: "local-secret",
      AWS_REGION: "eu-west-1",
      AWS_DEFAULT_REGION: "eu-west-1",
      AWS_MAX_ATTEMPTS: "1",
      AWS_EC2_METADATA_DISABLED: "true",
      AWS_CONFIG_FILE: join(dir, "config"),
      AWS_SHARED_CREDENTIALS_FILE: join(dir, "credentials"),
    };
    const cli = (endpointName: string, outfile: string) =>
      execFileAsync(
        "aws",
        [
          "sagemaker-runtime",
          "invoke-endpoint",
          "--endpoint-url",
          emulator.url,
          "--endpoint-name",
          endpointName,
          "--content-type",
          "application/json",
          "--body",
          JSON.stringify({ messages: [{ role: "user", content: "from the cli" }] }),
          ...(isV2 ? ["--cli-binary-format", "raw-in-base64-out"] : []),
          outfile,
        ],
        { env },
      );
    try {
      const outfile = join(dir, "out.json");
      const { stdout } = await cli("cli-ep", outfile);
      expect(JSON.parse(stdout)).toMatchObject({
        ContentType: "application/json",
        InvokedProductionVariant: "AllTraffic",
      });
      const reply = JSON.parse(await readFile(outfile, "utf8")) as ChatCompletion;
      expect(reply.choices[0]?.message.content).toContain("from the cli");
      expect(reply.usage.prompt_tokens).toBe(countTokens("user from the cli"));

      await expect(cli("missing-ep", join(dir, "missing.json"))).rejects.toMatchObject({
        stderr: expect.stringContaining("(ValidationError)"),
      });
    } finally {
      await emulator.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
