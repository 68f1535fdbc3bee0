import { AtriumError } from "@atrium/core/errors";
import {
  ChatRequest,
  chatCompletion,
  modelRequest,
  parseChunk,
  parseReply,
  promptTexts,
} from "@atrium/core/protocols/messages";
import { protocolFor, replyTokens } from "@atrium/core/protocols/registry";
import { generatedTokens, parseTokenEvent } from "@atrium/core/protocols/tgi";
import { countTokens, invokeReferenceModel } from "@atrium/local/reference-model";
import { describe, expect, it } from "vitest";

const bytes = (value: unknown) => Buffer.from(JSON.stringify(value));
const chat = (extra: Record<string, unknown> = {}) =>
  ChatRequest.parse({ model: "m", messages: [{ role: "user", content: "Hello there" }], ...extra });

/** The typed error a call throws, or a failure when it throws none. */
function thrown(call: () => unknown): AtriumError {
  try {
    call();
  } catch (err) {
    if (err instanceof AtriumError) return err;
    throw err;
  }
  throw new Error("expected an AtriumError");
}

describe("Messages API: the model request", () => {
  it("forwards the sampling fields that are set, and always the output bound", () => {
    const request = chat({ temperature: 0.2, stop: ["\n"], seed: 7, user: "extra", max_tokens: 99 });
    const call = modelRequest(request, 12);
    expect(JSON.parse(call.body.toString("utf8"))).toEqual({
      messages: request.messages,
      max_tokens: 12,
      temperature: 0.2,
      stop: ["\n"],
      seed: 7,
    });
    expect(call).toMatchObject({ contentType: "application/json", accept: "application/json" });
  });

  it("asks a stream for usage whether or not the client did, and sends no Accept", () => {
    const call = modelRequest(chat({ stream: true }), 5, { stream: true });
    const body = JSON.parse(call.body.toString("utf8"));
    expect(body).toMatchObject({ stream: true, stream_options: { include_usage: true }, max_tokens: 5 });
    expect(call.accept).toBeUndefined();
  });

  it("weighs every character of every message for the prompt bound", () => {
    const request = chat({
      messages: [
        { role: "system", content: "Be brief." },
        {
          role: "user",
          name: "ana",
          content: [
            { type: "text", text: "one " },
            { type: "text", text: "two" },
          ],
        },
      ],
    });
    expect(promptTexts(request)).toEqual(["systemBe brief.", "useranaone two"]);
  });
});

describe("Messages API: buffered replies", () => {
  it("reads the reference model's reply: its text, finish reason and exact usage", () => {
    const call = modelRequest(chat(), 8);
    const reply = invokeReferenceModel({ endpointName: "ep", ...call });
    const raw = JSON.parse(reply.body.toString("utf8"));
    const read = parseReply(reply.body, "m");
    expect(read.choices).toEqual([{ content: raw.choices[0].message.content, finishReason: "length" }]);
    expect(countTokens(read.choices[0]?.content ?? "")).toBe(8);
    expect(read.usage).toEqual({
      promptTokens: raw.usage.prompt_tokens,
      completionTokens: raw.usage.completion_tokens,
    });
  });

  it("answers the tenant an OpenAI chat.completion with the usage summed", () => {
    const reply = {
      choices: [{ content: "Hi", finishReason: "stop" }],
      usage: { promptTokens: 3, completionTokens: 1 },
    };
    expect(chatCompletion(reply, { id: "chatcmpl-1", model: "m", created: 5 })).toEqual({
      id: "chatcmpl-1",
      object: "chat.completion",
      created: 5,
      model: "m",
      choices: [
        { index: 0, message: { role: "assistant", content: "Hi" }, finish_reason: "stop", logprobs: null },
      ],
      usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
    });
  });

  it("reads a null finish reason as stop", () => {
    const reply = bytes({
      choices: [{ message: { role: "assistant", content: null }, finish_reason: null }],
      usage: { prompt_tokens: 1, completion_tokens: 0 },
    });
    expect(parseReply(reply, "m").choices).toEqual([{ content: null, finishReason: "stop" }]);
  });

  it.each([
    ["not JSON", Buffer.from("<html>")],
    [
      "no usage",
      bytes({ choices: [{ message: { role: "assistant", content: "x" }, finish_reason: "stop" }] }),
    ],
    ["no choices", bytes({ choices: [], usage: { prompt_tokens: 1, completion_tokens: 1 } })],
    [
      "negative usage",
      bytes({
        choices: [{ message: { role: "assistant", content: "x" }, finish_reason: "stop" }],
        usage: { prompt_tokens: -1, completion_tokens: 1 },
      }),
    ],
  ])("is a 502 model_bad_response naming the model for a reply with %s", (_, body) => {
    const err = thrown(() => parseReply(body, "my-model"));
    expect(err).toMatchObject({ status: 502, type: "api_error", code: "model_bad_response" });
    expect(err.message).toContain("'my-model'");
  });
});

describe("Messages API: stream chunks", () => {
  const chunk = (choices: unknown[], usage?: unknown) =>
    JSON.stringify({ object: "chat.completion.chunk", choices, ...(usage === undefined ? {} : { usage }) });

  it("reads the role chunk, content deltas, the finish reason and the usage chunk", () => {
    expect(
      parseChunk(chunk([{ delta: { role: "assistant", content: "" }, finish_reason: null }], null)),
    ).toEqual({
      deltaText: "",
      tokens: 0,
      finishReason: null,
    });
    expect(parseChunk(chunk([{ delta: { content: " wörld" }, finish_reason: null }]))).toEqual({
      deltaText: " wörld",
      tokens: 1,
      finishReason: null,
    });
    expect(parseChunk(chunk([{ delta: {}, finish_reason: "length" }]))).toEqual({
      deltaText: "",
      tokens: 0,
      finishReason: "length",
    });
    expect(parseChunk(chunk([], { prompt_tokens: 4, completion_tokens: 2, total_tokens: 6 }))).toEqual({
      deltaText: "",
      tokens: 0,
      finishReason: null,
      usage: { promptTokens: 4, completionTokens: 2 },
    });
  });

  it.each([
    ["not JSON", "{oops"],
    ["another object", JSON.stringify({ object: "chat.completion", choices: [] })],
    ["a bad delta", chunk([{ delta: { content: 3 }, finish_reason: null }])],
    ["bad usage", chunk([], { prompt_tokens: "4", completion_tokens: 2 })],
  ])("is a 502 model_bad_response for %s", (_, data) => {
    expect(thrown(() => parseChunk(data))).toMatchObject({ status: 502, code: "model_bad_response" });
  });
});

describe("TGI", () => {
  it("counts generated tokens of one generation, an array of them, and best_of's other sequences", () => {
    expect(generatedTokens({ generated_text: "a", details: { generated_tokens: 1 } })).toBe(1);
    const bestOf = { generated_tokens: 2, best_of_sequences: [{ generated_tokens: 3 }, { oops: 1 }] };
    expect(generatedTokens([{ details: bestOf }, { details: { generated_tokens: 4 } }])).toBe(9);
    expect(generatedTokens([{ generated_text: "no details" }])).toBeUndefined();
    expect(generatedTokens([])).toBeUndefined();
  });

  it("reads token events: text, special tokens without text, details in the last one", () => {
    const token = (text: string, special: boolean, details: unknown = null) =>
      JSON.stringify({
        index: 1,
        token: { id: 1, text, logprob: 0, special },
        generated_text: null,
        details,
      });
    expect(parseTokenEvent(token(" hi", false))).toEqual({ deltaText: " hi", tokens: 1, finishReason: null });
    expect(parseTokenEvent(token("</s>", true, { finish_reason: "eos_token", generated_tokens: 3 }))).toEqual(
      {
        deltaText: "",
        tokens: 1,
        finishReason: "eos_token",
        usage: { promptTokens: null, completionTokens: 3 },
      },
    );
    expect(thrown(() => parseTokenEvent('{"error":"overloaded"}'))).toMatchObject({
      code: "model_bad_response",
    });
  });
});

describe("the protocol registry", () => {
  it("picks the protocol a body is written in", () => {
    expect(protocolFor({ messages: [] })?.name).toBe("messages");
    expect(protocolFor({ inputs: "x" })?.name).toBe("tgi");
    expect(protocolFor({ prompt: "x" })).toBeUndefined();
  });

  it("reads a reply's usage by whichever protocol it is in, the prompt part standing in for TGI's", () => {
    expect(replyTokens({ usage: { total_tokens: 42 } }, 10)).toBe(42);
    expect(replyTokens({ usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: "x" } }, 10)).toBe(7);
    expect(replyTokens([{ details: { generated_tokens: 2 } }], 10)).toBe(12);
    expect(replyTokens({ usage: { total_tokens: -1 } }, 10)).toBeUndefined();
    expect(replyTokens("text", 10)).toBeUndefined();
  });
});
