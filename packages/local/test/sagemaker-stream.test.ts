import { execFile, spawnSync } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { promisify } from "node:util";
import {
  InvokeEndpointCommand,
  InvokeEndpointWithResponseStreamCommand,
  type InvokeEndpointWithResponseStreamCommandInput,
  ModelError,
  ModelStreamError,
  SageMakerRuntimeClient,
  ValidationError,
} from "@aws-sdk/client-sagemaker-runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { countTokens } from "../src/reference-model";
import {
  type EndpointBackend,
  type SageMakerEmulator,
  startSageMakerEmulator,
} from "../src/sagemaker-emulator";

const execFileAsync = promisify(execFile);
const hasBoto3 = spawnSync("python3", ["-c", "import boto3"]).status === 0;
const decoder = new TextDecoder();
const TOKEN_DELAY_MS = 30;

interface ChatChunk {
  object: string;
  choices: { index: number; delta: { role?: string; content?: string }; finish_reason: string | null }[];
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
}

interface TgiEvent {
  index: number;
  token: { text: string; special: boolean };
  generated_text: string | null;
  details: { finish_reason: string; generated_tokens: number } | null;
}

/** A streaming container: its first SSE line at once, the rest only once the test calls `release()`. */
function startStreamingContainer() {
  let release = () => {};
  const seen: { accept?: string; contentType?: string; body?: string } = {};
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    Object.assign(seen, { accept: req.headers.accept, contentType: req.headers["content-type"], body });
    if (body === "fail") return res.writeHead(503, { "content-type": "text/plain" }).end("overloaded");
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    res.writeHead(200, { "content-type": "text/event-stream", "x-amzn-sagemaker-custom-attributes": "c=1" });
    res.write('data: {"token":"first"}\n\n');
    await released;
    // "break" drops the connection mid-stream, as a crashing container would.
    if (body === "break") return res.destroy();
    res.end('data: {"token":"second"}\n\ndata: [DONE]\n\n');
  });
  return { server, seen, release: () => release() };
}

async function listenOn(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function clientFor(emulator: SageMakerEmulator): SageMakerRuntimeClient {
  return new SageMakerRuntimeClient({
    endpoint: emulator.url,
    region: "eu-west-1",
    credentials: { accessKeyId: "AKIDLOCALTEST", secretAccessKey: "local-secret" },
    maxAttempts: 1,
  });
}

const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const chat = (text: string, extra: Record<string, unknown> = {}) =>
  json({ messages: [{ role: "user", content: text }], ...extra });

/** Every SSE `data:` payload in the reassembled bytes. */
function sseData(text: string): string[] {
  return text
    .split("\n\n")
    .filter((event) => event.startsWith("data:"))
    .map((event) => event.slice("data:".length).trim());
}

describe("InvokeEndpointWithResponseStream over the real SDK", () => {
  let emulator: SageMakerEmulator;
  let slow: SageMakerEmulator;
  let client: SageMakerRuntimeClient;
  const container = startStreamingContainer();
  const endpoints: Record<string, EndpointBackend> = {};
  const resolveEndpoint = (name: string) => (Object.hasOwn(endpoints, name) ? endpoints[name] : undefined);

  beforeAll(async () => {
    endpoints["chat-ep"] = { kind: "reference" };
    endpoints["container-ep"] = { kind: "container", url: await listenOn(container.server) };
    emulator = await startSageMakerEmulator({ resolveEndpoint });
    slow = await startSageMakerEmulator({ resolveEndpoint, tokenDelayMs: TOKEN_DELAY_MS });
    client = clientFor(emulator);
  });

  afterAll(async () => {
    client.destroy();
    await Promise.all([emulator.close(), slow.close()]);
    container.server.closeAllConnections();
    await new Promise<void>((resolve) => container.server.close(() => resolve()));
  });

  /** Sends the call and collects every PayloadPart; `onPart` sees each one as it arrives. */
  async function stream(
    input: InvokeEndpointWithResponseStreamCommandInput,
    via = client,
    onPart: (bytes: Uint8Array) => void = () => {},
  ) {
    const out = await via.send(new InvokeEndpointWithResponseStreamCommand(input));
    const parts: Uint8Array[] = [];
    for await (const event of out.Body ?? []) {
      if (event.PayloadPart?.Bytes) {
        parts.push(event.PayloadPart.Bytes);
        onPart(event.PayloadPart.Bytes);
      }
    }
    const text = decoder.decode(Buffer.concat(parts));
    return { out, parts, text };
  }

  async function buffered(body: Uint8Array): Promise<string> {
    const out = await client.send(
      new InvokeEndpointCommand({ EndpointName: "chat-ep", Body: body, ContentType: "application/json" }),
    );
    return decoder.decode(out.Body);
  }

  it("streams OpenAI chunks whose text equals the buffered InvokeEndpoint text", async () => {
    const body = chat("Tell me about streaming, token by token — ünïcödé too", { max_tokens: 40 });
    const { out, parts, text } = await stream({
      EndpointName: "chat-ep",
      Body: body,
      ContentType: "application/json",
    });
    expect(out.ContentType).toBe("text/event-stream");
    expect(out.InvokedProductionVariant).toBe("AllTraffic");
    // Parts are cut mid-line, as SageMaker's are: reassembly is the consumer's job.
    expect(parts.some((p) => !decoder.decode(p).endsWith("\n\n"))).toBe(true);
    const data = sseData(text);
    expect(data.at(-1)).toBe("[DONE]");
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as ChatChunk);
    expect(chunks.every((c) => c.object === "chat.completion.chunk" && c.usage === undefined)).toBe(true);
    expect(chunks[0]?.choices[0]?.delta.role).toBe("assistant");
    expect(chunks.slice(0, -1).every((c) => c.choices[0]?.finish_reason === null)).toBe(true);
    const streamed = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    const whole = JSON.parse(await buffered(body)) as {
      choices: { message: { content: string }; finish_reason: string }[];
    };
    expect(streamed).toBe(whole.choices[0]?.message.content);
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe(whole.choices[0]?.finish_reason);
    // The role chunk, one chunk per token, the finish chunk.
    expect(chunks).toHaveLength(countTokens(streamed) + 2);
  });

  it("ends with the usage chunk, and usage null before it, when include_usage is set", async () => {
    const body = chat("count my tokens", { stream: true, stream_options: { include_usage: true } });
    const { text } = await stream({ EndpointName: "chat-ep", Body: body, ContentType: "application/json" });
    const chunks = sseData(text)
      .slice(0, -1)
      .map((d) => JSON.parse(d) as ChatChunk);
    const last = chunks.at(-1);
    expect(last?.choices).toEqual([]);
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    const whole = JSON.parse(await buffered(chat("count my tokens"))) as { usage: unknown };
    expect(last?.usage).toEqual(whole.usage);
  });

  it("streams TGI token events for an `inputs` body, details in the last", async () => {
    const body = json({ inputs: "Once upon a time", parameters: { max_new_tokens: 9 } });
    const { text } = await stream({ EndpointName: "chat-ep", Body: body, ContentType: "application/json" });
    const events = sseData(text).map((d) => JSON.parse(d) as TgiEvent);
    const [whole] = JSON.parse(await buffered(body)) as { generated_text: string }[];
    expect(events.map((e) => e.token.text).join("")).toBe(whole?.generated_text);
    expect(events.map((e) => e.index)).toEqual(events.map((_, i) => i + 1));
    expect(events.slice(0, -1).every((e) => e.details === null && e.generated_text === null)).toBe(true);
    expect(events.at(-1)?.generated_text).toBe(whole?.generated_text);
    expect(events.at(-1)?.details).toMatchObject({ finish_reason: "length", generated_tokens: 9 });
  });

  it("sends parts as tokens are produced, not all at the end, with a token delay", async () => {
    const slowClient = clientFor(slow);
    const producedAtArrival: number[] = [];
    const { parts } = await stream(
      { EndpointName: "chat-ep", Body: chat("pace me", { max_tokens: 12 }), ContentType: "application/json" },
      slowClient,
      () => producedAtArrival.push(slow.invocations("chat-ep").at(-1)?.streamedParts ?? 0),
    );
    slowClient.destroy();
    const total = slow.invocations("chat-ep").at(-1)?.streamedParts;
    expect(total).toBe(parts.length);
    // 12 tokens + role + finish + [DONE], each event cut in two.
    expect(parts.length).toBe(2 * 15);
    // No part arrives before it was produced, and they arrive in the order produced.
    expect(producedAtArrival.every((produced, i) => produced >= i + 1)).toBe(true);
    expect(producedAtArrival).toEqual([...producedAtArrival].sort((a, b) => a - b));
    // The first part reached the client before the model had produced its last token.
    expect(producedAtArrival[0]).toBeLessThan(parts.length);
  });

  it("throws ModelStreamError from the SDK's loop after the injected number of parts", async () => {
    emulator.injectFault("chat-ep", { streamError: "ModelStreamError", afterParts: 3, times: 1 });
    const received: Uint8Array[] = [];
    const failure = await stream(
      { EndpointName: "chat-ep", Body: chat("break me"), ContentType: "application/json" },
      client,
      (bytes) => received.push(bytes),
    ).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ModelStreamError);
    expect((failure as ModelStreamError).name).toBe("ModelStreamError");
    expect((failure as ModelStreamError).ErrorCode).toBe("StreamBroken");
    expect(received).toHaveLength(3);
    // The fault was used up: the next call streams to the end.
    const again = await stream({
      EndpointName: "chat-ep",
      Body: chat("again"),
      ContentType: "application/json",
    });
    expect(sseData(again.text).at(-1)).toBe("[DONE]");
  });

  it("throws InternalStreamFailure from the SDK's loop when injected", async () => {
    emulator.injectFault("chat-ep", { streamError: "InternalStreamFailure", afterParts: 0, times: 1 });
    const failure = await stream({
      EndpointName: "chat-ep",
      Body: chat("x"),
      ContentType: "application/json",
    }).catch((err: unknown) => err);
    expect((failure as Error).name).toBe("InternalStreamFailure");
  });

  it("answers errors before the stream as the SDK's typed errors", async () => {
    for (const name of ["no-such-ep", "constructor", "hasOwnProperty"]) {
      const err = await stream({ EndpointName: name, Body: chat("hi") }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).message).toBe(`Endpoint ${name} of account 000000000000 not found.`);
    }
    emulator.injectFault("chat-ep", { error: "ThrottlingException", times: 1 });
    const throttled = await stream({ EndpointName: "chat-ep", Body: chat("hi") }).catch((e: unknown) => e);
    expect((throttled as Error).name).toBe("ThrottlingException");
    const bad = await stream({
      EndpointName: "chat-ep",
      Body: json({ messages: [] }),
      ContentType: "application/json",
    }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(ModelError);
    expect((bad as ModelError).OriginalStatusCode).toBe(400);
  });

  it("answers the raw protocol: event-stream content type and the SageMaker headers", async () => {
    const res = await fetch(`${emulator.url}/endpoints/chat-ep/invocations-response-stream`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-amzn-sagemaker-target-variant": "blue" },
      body: chat("raw"),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/vnd.amazon.eventstream");
    expect(res.headers.get("x-amzn-sagemaker-content-type")).toBe("text/event-stream");
    expect(res.headers.get("x-amzn-invoked-production-variant")).toBe("blue");
    expect(res.headers.get("x-amzn-requestid")).toMatch(/^[0-9a-f-]{36}$/);
    const bytes = Buffer.from(await res.arrayBuffer());
    // The first message's prelude: its total length fits in what came, its headers inside it.
    expect(bytes.readUInt32BE(0)).toBeLessThanOrEqual(bytes.length);
    expect(bytes.readUInt32BE(4)).toBeLessThan(bytes.readUInt32BE(0));
  });

  it("relays a container's bytes as they come: the first part arrives before the container ends", async () => {
    let firstPart = "";
    const done = stream(
      {
        EndpointName: "container-ep",
        Body: json({ inputs: "hi" }),
        ContentType: "application/json",
        Accept: "text/event-stream",
        InferenceComponentName: "ic-1",
      },
      client,
      (bytes) => {
        // Only once the first part is here may the container finish: a buffering relay would hang.
        if (!firstPart) {
          firstPart = decoder.decode(bytes);
          container.release();
        }
      },
    );
    const { out, text, parts } = await done;
    expect(firstPart).toBe('data: {"token":"first"}\n\n');
    expect(parts.length).toBeGreaterThanOrEqual(2);
    expect(text).toBe('data: {"token":"first"}\n\ndata: {"token":"second"}\n\ndata: [DONE]\n\n');
    expect(out.ContentType).toBe("text/event-stream");
    expect(out.CustomAttributes).toBe("c=1");
    expect(container.seen).toMatchObject({ accept: "text/event-stream", contentType: "application/json" });
    expect(emulator.invocations("container-ep").at(-1)).toMatchObject({
      inferenceComponentName: "ic-1",
      streamedParts: parts.length,
    });
  });

  it("turns a container that drops mid-stream into ModelStreamError, and a 5xx into ModelError", async () => {
    const received: string[] = [];
    const broken = await stream(
      { EndpointName: "container-ep", Body: new TextEncoder().encode("break") },
      client,
      (bytes) => {
        received.push(decoder.decode(bytes));
        container.release();
      },
    ).catch((e: unknown) => e);
    expect(received).toEqual(['data: {"token":"first"}\n\n']);
    expect(broken).toBeInstanceOf(ModelStreamError);
    expect((broken as ModelStreamError).ErrorCode).toBe("StreamBroken");
    const failed = await stream({
      EndpointName: "container-ep",
      Body: new TextEncoder().encode("fail"),
    }).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(ModelError);
    expect((failed as ModelError).OriginalStatusCode).toBe(503);
    expect((failed as ModelError).OriginalMessage).toBe("overloaded");
  });

  it.skipIf(!hasBoto3)("works with boto3's invoke_endpoint_with_response_stream", async () => {
    const script = `
import json, sys, boto3
from botocore.exceptions import EventStreamError
client = boto3.client("sagemaker-runtime", endpoint_url=sys.argv[1], region_name="eu-west-1",
                      aws_access_key_id="local", aws_secret_access_key="local")
def run(body):
    res = client.invoke_endpoint_with_response_stream(EndpointName="chat-ep", Body=body, ContentType="application/json")
    parts = []
    try:
        for event in res["Body"]:
            parts.append(event["PayloadPart"]["Bytes"])
    except EventStreamError as err:
        return {"parts": len(parts), "error": err.response["Error"]["Code"]}
    return {"parts": len(parts), "text": b"".join(parts).decode("utf-8"), "type": res["ContentType"]}
print(json.dumps([run(sys.argv[2]), run(sys.argv[2])]))
`;
    const body = JSON.stringify({ messages: [{ role: "user", content: "from python" }] });
    emulator.clearFaults();
    // The first call streams to the end; the second breaks after 4 parts.
    emulator.injectFault("chat-ep", { latencyMs: 0, times: 1 });
    emulator.injectFault("chat-ep", { streamError: "ModelStreamError", afterParts: 4, times: 1 });
    const { stdout } = await execFileAsync("python3", ["-c", script, emulator.url, body], {
      env: { ...process.env, AWS_EC2_METADATA_DISABLED: "true" },
    });
    const [whole, broken] = JSON.parse(stdout) as [
      { parts: number; text: string; type: string },
      { parts: number; error: string },
    ];
    expect(whole.type).toBe("text/event-stream");
    const { text: viaSdk, parts } = await stream({
      EndpointName: "chat-ep",
      Body: new TextEncoder().encode(body),
      ContentType: "application/json",
    });
    expect(whole.text).toBe(viaSdk);
    expect(whole.parts).toBe(parts.length);
    expect(broken).toEqual({ parts: 4, error: "ModelStreamError" });
  });
});
