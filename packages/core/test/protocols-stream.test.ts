/**
 * The reference model's real streamed output, read through sse.ts and the protocol modules, gives the
 * text and usage of its buffered reply to the same request: from its SSE events cut at random byte
 * offsets, and from the SageMaker emulator's PayloadParts over HTTP (cut mid-line by the emulator).
 */
import { ChatRequest, modelRequest, parseReply } from "@atrium/core/protocols/messages";
import type { ModelUsage, StreamDelta } from "@atrium/core/protocols/protocol";
import { protocolFor } from "@atrium/core/protocols/registry";
import { type SseEvent, SseReader } from "@atrium/core/protocols/sse";
import { countTokens, invokeReferenceModel, type ReferenceModelInput } from "@atrium/local/reference-model";
import { streamReferenceModel } from "@atrium/local/reference-stream";
import { type SageMakerEmulator, startSageMakerEmulator } from "@atrium/local/sagemaker-emulator";
import {
  InvokeEndpointCommand,
  InvokeEndpointWithResponseStreamCommand,
  SageMakerRuntimeClient,
} from "@aws-sdk/client-sagemaker-runtime";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

interface StreamRead {
  text: string;
  finishReason: string | null;
  usage: ModelUsage | undefined;
  deltas: number;
  done: boolean;
}

/** What a streamed call produced, read from its byte chunks by the protocol of its request body. */
function readStream(requestBody: Uint8Array, chunks: Uint8Array[]): StreamRead {
  const protocol = protocolFor(JSON.parse(Buffer.from(requestBody).toString("utf8")));
  if (!protocol) throw new Error("no protocol reads this body");
  const reader = new SseReader();
  const events: SseEvent[] = chunks.flatMap((chunk) => reader.push(chunk));
  expect(reader.end()).toBeNull();
  const deltas: StreamDelta[] = [];
  for (const event of events) if (event.kind === "data") deltas.push(protocol.streamEvent(event.data));
  return {
    text: deltas.map((d) => d.deltaText).join(""),
    finishReason: deltas.findLast((d) => d.finishReason !== null)?.finishReason ?? null,
    usage: deltas.findLast((d) => d.usage)?.usage,
    deltas: deltas.filter((d) => d.deltaText !== "").length,
    done: events.at(-1)?.kind === "done",
  };
}

/** `bytes` cut at the given offsets, even inside a UTF-8 character. */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  return [0, ...at].map((start, i) => bytes.subarray(start, at[i] ?? bytes.length));
}

const referenceInput = (call: { body: Buffer; contentType: string }): ReferenceModelInput => ({
  endpointName: "ref-ep",
  ...call,
});

/** The reference model's whole streamed answer, as bytes. */
function streamedBytes(input: ReferenceModelInput): Uint8Array {
  const stream = streamReferenceModel(input);
  if (!("events" in stream)) throw new Error(`no stream: ${stream.body.toString("utf8")}`);
  return Buffer.from(stream.events.join(""));
}

// Prompts with multi-byte characters, so cuts land inside them.
const prompt = fc.oneof(fc.string({ unit: "grapheme", minLength: 1 }), fc.constant("Grüße, 世界 🙂 — ok?"));

const chatRequest = fc
  .record({
    content: prompt,
    stop: fc.option(fc.constantFrom(".", "digest", " "), { nil: undefined }),
  })
  .map(({ content, stop }) =>
    ChatRequest.parse({ model: "m", messages: [{ role: "user", content }], ...(stop ? { stop } : {}) }),
  );

const tgiBody = (inputs: string, maxNewTokens: number) =>
  Buffer.from(JSON.stringify({ inputs, parameters: { max_new_tokens: maxNewTokens, details: true } }));

describe("the reference model's streams, split anywhere and read back", () => {
  it("Messages API: the streamed text, finish reason and usage are the buffered reply's", () => {
    fc.assert(
      fc.property(
        chatRequest,
        fc.integer({ min: 1, max: 40 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (request, bound, cuts) => {
          const buffered = parseReply(
            invokeReferenceModel(referenceInput(modelRequest(request, bound))).body,
            "m",
          );
          const call = modelRequest(request, bound, { stream: true });
          const streamed = readStream(call.body, split(streamedBytes(referenceInput(call)), cuts));
          expect(streamed.text).toBe(buffered.choices[0]?.content);
          expect(streamed.finishReason).toBe(buffered.choices[0]?.finishReason);
          expect(streamed.usage).toEqual(buffered.usage);
          expect(streamed.done).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("TGI: the streamed text is the buffered generated_text, and details count its tokens", () => {
    fc.assert(
      fc.property(
        prompt,
        fc.integer({ min: 1, max: 40 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (inputs, bound, cuts) => {
          const body = tgiBody(inputs, bound);
          const buffered = invokeReferenceModel(referenceInput({ body, contentType: "application/json" }));
          const [generation] = JSON.parse(buffered.body.toString("utf8")) as { generated_text: string }[];
          const streamed = readStream(
            body,
            split(streamedBytes(referenceInput({ body, contentType: "application/json" })), cuts),
          );
          expect(streamed.text).toBe(generation?.generated_text);
          expect(streamed.usage).toEqual({
            promptTokens: null,
            completionTokens: countTokens(generation?.generated_text ?? ""),
          });
          expect(streamed.deltas).toBe(streamed.usage?.completionTokens);
          expect(streamed.finishReason).toMatch(/^(length|eos_token|stop_sequence)$/);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("through the SageMaker emulator (InvokeEndpointWithResponseStream over HTTP)", () => {
  let emulator: SageMakerEmulator;
  let client: SageMakerRuntimeClient;

  beforeAll(async () => {
    emulator = await startSageMakerEmulator({
      resolveEndpoint: (name) => (name === "ref-ep" ? { kind: "reference" } : undefined),
    });
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

  async function streamParts(body: Uint8Array): Promise<Uint8Array[]> {
    const out = await client.send(
      new InvokeEndpointWithResponseStreamCommand({
        EndpointName: "ref-ep",
        Body: body,
        ContentType: "application/json",
      }),
    );
    const parts: Uint8Array[] = [];
    for await (const event of out.Body ?? [])
      if (event.PayloadPart?.Bytes) parts.push(event.PayloadPart.Bytes);
    return parts;
  }

  async function buffered(call: {
    body: Uint8Array;
    contentType: string;
    accept?: string;
  }): Promise<Uint8Array> {
    const out = await client.send(
      new InvokeEndpointCommand({
        EndpointName: "ref-ep",
        Body: call.body,
        ContentType: call.contentType,
        ...(call.accept ? { Accept: call.accept } : {}),
      }),
    );
    return out.Body as Uint8Array;
  }

  it("Messages API: the parts reassemble into the buffered reply's text and usage", async () => {
    const request = ChatRequest.parse({
      model: "m",
      messages: [{ role: "user", content: "Grüße, 世界 🙂 — ok?" }],
    });
    const reply = parseReply(await buffered(modelRequest(request, 30)), "m");
    const call = modelRequest(request, 30, { stream: true });
    const parts = await streamParts(call.body);
    const streamed = readStream(call.body, parts);
    // The emulator cuts every event in two, so no part is a whole line and reassembly is needed.
    expect(parts.length).toBeGreaterThan(streamed.deltas + 2);
    expect(streamed.text).toBe(reply.choices[0]?.content);
    expect(streamed.usage).toEqual(reply.usage);
    expect(streamed.done).toBe(true);
  });

  it("TGI: the parts reassemble into the buffered generated_text, counted by details", async () => {
    const body = tgiBody("Grüße, 世界 🙂 — ok?", 30);
    const [generation] = JSON.parse(
      Buffer.from(await buffered({ body, contentType: "application/json" })).toString("utf8"),
    ) as { generated_text: string }[];
    const streamed = readStream(body, await streamParts(body));
    expect(streamed.text).toBe(generation?.generated_text);
    expect(streamed.usage).toEqual({
      promptTokens: null,
      completionTokens: countTokens(generation?.generated_text ?? ""),
    });
  });
});
