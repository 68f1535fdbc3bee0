import { createHash } from "node:crypto";
import {
  InvokeEndpointCommand,
  InvokeEndpointWithResponseStreamCommand,
  ModelError,
  SageMakerRuntimeClient,
} from "@aws-sdk/client-sagemaker-runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { countTokens, invokeReferenceModel, type ModelReply } from "../src/reference-model";
import { type SageMakerEmulator, startSageMakerEmulator } from "../src/sagemaker-emulator";

interface ChatCompletion {
  id: string;
  object: string;
  created: number;
  model: string;
  choices: { index: number; message: { role: string; content: string }; finish_reason: string }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

interface ErrorBody {
  error: { message: string; type: string; param: string | null };
}

const chat = (body: unknown, extra: { targetModel?: string; inferenceComponentName?: string } = {}) =>
  invokeReferenceModel({
    endpointName: "ref-ep",
    body: Buffer.from(JSON.stringify(body)),
    contentType: "application/json",
    ...extra,
  });

const json = <T>(reply: ModelReply): T => JSON.parse(reply.body.toString("utf8")) as T;

const ask = (text: string, extra: Record<string, unknown> = {}) => ({
  messages: [{ role: "user", content: text }],
  ...extra,
});

describe("countTokens", () => {
  it.each([
    ["", 0],
    ["   \n\t ", 0],
    ["hello", 1],
    ["Hello, world!", 4],
    ["don't stop", 4],
    ["snake_case_name 42", 2],
    ["héllo wörld Ελλάδα 東京", 4],
    ["a+b=c", 5],
  ])("counts %j as %i tokens", (text, expected) => {
    expect(countTokens(text)).toBe(expected);
  });
});

describe("chat completions", () => {
  it("answers in the chat.completion shape with honest usage", () => {
    const request = {
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: [{ type: "text", text: "Hi there" }] },
      ],
    };
    const reply = chat(request);
    expect(reply.status).toBe(200);
    expect(reply.contentType).toBe("application/json");
    const body = json<ChatCompletion>(reply);
    expect(body.object).toBe("chat.completion");
    expect(body.model).toBe("ref-ep");
    expect(body.id).toMatch(/^chatcmpl-[0-9a-f]{24}$/);
    expect(Number.isInteger(body.created)).toBe(true);
    const [choice] = body.choices;
    expect(choice?.index).toBe(0);
    expect(choice?.message.role).toBe("assistant");
    expect(choice?.finish_reason).toBe("stop");
    const content = choice?.message.content ?? "";
    // system (1) + "Be brief." (3) + user (1) + "Hi there" (2)
    expect(body.usage.prompt_tokens).toBe(7);
    expect(body.usage.completion_tokens).toBe(countTokens(content));
    expect(body.usage.total_tokens).toBe(7 + countTokens(content));
    expect(content).toContain("ref-ep");
    expect(content).toContain("Hi there");
  });

  it("is deterministic: the same request gives byte-identical replies", () => {
    const request = ask("What is the capital of France?", { temperature: 0.7, seed: 3 });
    expect(chat(request).body.equals(chat(request).body)).toBe(true);
  });

  it("gives a different reply when the last user message differs", () => {
    const a = json<ChatCompletion>(chat(ask("first question")));
    const b = json<ChatCompletion>(chat(ask("second question")));
    expect(a.choices[0]?.message.content).not.toBe(b.choices[0]?.message.content);
    expect(a.id).not.toBe(b.id);
  });

  it("differs even when only the tail of a long message differs", () => {
    const stem = "one two three four five six seven eight nine ten eleven twelve thirteen";
    const a = json<ChatCompletion>(chat(ask(`${stem} alpha`)));
    const b = json<ChatCompletion>(chat(ask(`${stem} beta`)));
    expect(a.choices[0]?.message.content).not.toBe(b.choices[0]?.message.content);
  });

  it("names the target model, or the inference component, as the model", () => {
    const viaTarget = json<ChatCompletion>(chat(ask("hi"), { targetModel: "llama.tar.gz" }));
    expect(viaTarget.model).toBe("llama.tar.gz");
    expect(viaTarget.choices[0]?.message.content).toContain("llama.tar.gz");
    const viaComponent = json<ChatCompletion>(chat(ask("hi"), { inferenceComponentName: "ic-small" }));
    expect(viaComponent.model).toBe("ic-small");
    expect(viaComponent.choices[0]?.message.content).toContain("ic-small");
  });

  it("cuts the reply to exactly max_tokens tokens and says finish_reason length", () => {
    const full = json<ChatCompletion>(chat(ask("Tell me something long")));
    const fullContent = full.choices[0]?.message.content ?? "";
    const fullCount = countTokens(fullContent);
    expect(fullCount).toBeGreaterThan(10);
    for (let n = 1; n < fullCount; n++) {
      const cut = json<ChatCompletion>(chat(ask("Tell me something long", { max_tokens: n })));
      const content = cut.choices[0]?.message.content ?? "";
      expect(countTokens(content)).toBe(n);
      expect(cut.usage.completion_tokens).toBe(n);
      expect(cut.choices[0]?.finish_reason).toBe("length");
      expect(fullContent.startsWith(content)).toBe(true);
    }
    const exact = json<ChatCompletion>(chat(ask("Tell me something long", { max_tokens: fullCount })));
    expect(exact.choices[0]?.finish_reason).toBe("stop");
    expect(exact.choices[0]?.message.content).toBe(fullContent);
  });

  it("honours stop sequences", () => {
    const reply = json<ChatCompletion>(chat(ask("hello", { stop: ["digest"] })));
    const content = reply.choices[0]?.message.content ?? "";
    expect(content).not.toContain("digest");
    expect(content.length).toBeGreaterThan(0);
    expect(reply.choices[0]?.finish_reason).toBe("stop");
    expect(reply.usage.completion_tokens).toBe(countTokens(content));
  });

  it.each([
    ["messages missing", { prompt: "hi" }, null],
    ["messages empty", { messages: [] }, "messages"],
    ["messages not an array", { messages: "hi" }, "messages"],
    ["message not an object", { messages: ["hi"] }, "messages.0"],
    ["unknown role", { messages: [{ role: "robot", content: "hi" }] }, "messages.0.role"],
    ["content a number", { messages: [{ role: "user", content: 42 }] }, "messages.0.content"],
    [
      "non-text content part",
      { messages: [{ role: "user", content: [{ type: "image_url", image_url: "x" }] }] },
      "messages.0.content.0",
    ],
    ["max_tokens zero", ask("hi", { max_tokens: 0 }), "max_tokens"],
    ["max_tokens fractional", ask("hi", { max_tokens: 1.5 }), "max_tokens"],
    ["max_tokens a string", ask("hi", { max_tokens: "10" }), "max_tokens"],
    ["temperature negative", ask("hi", { temperature: -1 }), "temperature"],
    ["top_p zero", ask("hi", { top_p: 0 }), "top_p"],
    ["stop a number", ask("hi", { stop: 5 }), "stop"],
    ["seed fractional", ask("hi", { seed: 1.2 }), "seed"],
    ["streaming", ask("hi", { stream: true }), "stream"],
  ])("rejects %s with a 400", (_label, body, param) => {
    const reply = chat(body);
    expect(reply.status).toBe(400);
    const error = json<ErrorBody>(reply).error;
    expect(error.type).toBe("invalid_request_error");
    expect(error.param).toBe(param);
    expect(error.message.length).toBeGreaterThan(0);
  });

  it("rejects a body that is not JSON, or not a JSON object", () => {
    const notJson = invokeReferenceModel({
      endpointName: "ref-ep",
      body: Buffer.from("{nope"),
      contentType: "application/json",
    });
    expect(notJson.status).toBe(400);
    expect(json<ErrorBody>(notJson).error.message).toMatch(/not valid JSON/);
    expect(chat([1, 2]).status).toBe(400);
  });

  it("refuses an Accept it cannot produce with 406, and accepts JSON-compatible ones", () => {
    const input = { endpointName: "ref-ep", body: Buffer.from(JSON.stringify(ask("hi"))) };
    const csv = invokeReferenceModel({ ...input, contentType: "application/json", accept: "text/csv" });
    expect(csv.status).toBe(406);
    for (const accept of ["application/json", "*/*", "text/csv, application/json;q=0.5"]) {
      expect(invokeReferenceModel({ ...input, contentType: "application/json", accept }).status).toBe(200);
    }
  });
});

describe("TGI-style generation", () => {
  it("returns generated_text deterministically and honours max_new_tokens", () => {
    const request = { inputs: "Once upon a time" };
    const a = chat(request);
    expect(a.status).toBe(200);
    expect(a.body.equals(chat(request).body)).toBe(true);
    const [first] = json<{ generated_text: string }[]>(a);
    expect(first?.generated_text).toContain("Once upon a time");
    const cut = json<{ generated_text: string }[]>(
      chat({ inputs: "Once upon a time", parameters: { max_new_tokens: 4 } }),
    );
    expect(countTokens(cut[0]?.generated_text ?? "")).toBe(4);
    expect(first?.generated_text.startsWith(cut[0]?.generated_text ?? "?")).toBe(true);
  });

  it("rejects empty inputs and bad parameters with a 400", () => {
    expect(chat({ inputs: "" }).status).toBe(400);
    expect(chat({ inputs: 5 }).status).toBe(400);
    expect(chat({ inputs: "x", parameters: { max_new_tokens: -2 } }).status).toBe(400);
    expect(chat({ inputs: "x", parameters: "fast" }).status).toBe(400);
  });
});

describe("binary payloads", () => {
  it("reports the byte count and sha256 of anything that is not JSON", () => {
    const body = Buffer.from([0, 1, 2, 255, 254, 10, 13, 0]);
    for (const contentType of ["application/octet-stream", undefined, "image/png"]) {
      const reply = invokeReferenceModel({
        endpointName: "bin-ep",
        body,
        ...(contentType ? { contentType } : {}),
      });
      expect(reply.status).toBe(200);
      expect(json(reply)).toEqual({
        endpoint: "bin-ep",
        bytes: 8,
        sha256: createHash("sha256").update(body).digest("hex"),
      });
    }
  });
});

describe("the Accept header, through the SageMaker emulator", () => {
  let emulator: SageMakerEmulator;
  let client: SageMakerRuntimeClient;
  const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

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
    client.destroy();
    await emulator.close();
  });

  /** The streamed text of InvokeEndpointWithResponseStream, all its payload parts joined. */
  async function streamed(body: Uint8Array, accept: string, contentType = "application/json") {
    const out = await client.send(
      new InvokeEndpointWithResponseStreamCommand({
        EndpointName: "ref-ep",
        Body: body,
        ContentType: contentType,
        Accept: accept,
      }),
    );
    let text = "";
    for await (const event of out.Body ?? []) text += Buffer.from(event.PayloadPart?.Bytes ?? []).toString();
    return { contentType: out.ContentType, text };
  }

  const refusal = async (call: Promise<unknown>) => {
    const err = await call.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ModelError);
    return err as ModelError;
  };

  it("streams a chat request that accepts server-sent events", async () => {
    for (const accept of ["text/event-stream", "text/*", "*/*", "application/json"]) {
      const { contentType, text } = await streamed(encode(ask("hi", { stream: true })), accept);
      expect(contentType, accept).toBe("text/event-stream");
      expect(text, accept).toMatch(/^data: \{"id":"chatcmpl-/);
      expect(text.endsWith("data: [DONE]\n\n"), accept).toBe(true);
    }
  });

  it("streams TGI token events to a request that accepts server-sent events", async () => {
    const { contentType, text } = await streamed(encode({ inputs: "Once upon a time" }), "text/event-stream");
    expect(contentType).toBe("text/event-stream");
    expect(text.split("\n\n").filter(Boolean).at(-1)).toMatch(/^data:\{"index":\d+,.*"generated_text":"/);
  });

  it("refuses, as ModelError with the model's 406, an Accept that nothing it answers can meet", async () => {
    // A buffered call answers JSON only.
    const buffered = await refusal(
      client.send(
        new InvokeEndpointCommand({
          EndpointName: "ref-ep",
          Body: encode(ask("hi")),
          ContentType: "application/json",
          Accept: "text/event-stream",
        }),
      ),
    );
    expect(buffered.OriginalStatusCode).toBe(406);
    expect(buffered.OriginalMessage).toContain("text/event-stream");
    // A stream's events are not CSV.
    const csv = await refusal(streamed(encode(ask("hi", { stream: true })), "text/csv"));
    expect(csv.OriginalStatusCode).toBe(406);
    // A binary payload is answered with JSON even on the streaming operation.
    const binary = await refusal(
      streamed(new Uint8Array([1, 2, 3]), "text/event-stream", "application/octet-stream"),
    );
    expect(binary.OriginalStatusCode).toBe(406);
  });
});
