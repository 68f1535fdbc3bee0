/**
 * Reading a model's stream for the meter (ModelStreamReader) and writing the tenant's OpenAI chunks
 * (ChatChunks): usage from the model's own report, else counted token events plus the prompt's
 * reservation; OpenAI's chunk order, with the usage chunk only when asked for.
 */

import { upstream } from "@atrium/core/errors";
import { ChatChunks } from "@atrium/core/protocols/chat-chunks";
import { messages } from "@atrium/core/protocols/messages";
import { ModelStreamReader } from "@atrium/core/protocols/stream-reader";
import { tgi } from "@atrium/core/protocols/tgi";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const bytes = (text: string) => new TextEncoder().encode(text);
const sse = (data: unknown) => `data: ${JSON.stringify(data)}\n\n`;
const chunk = (content: string | null, finish: string | null = null, usage?: unknown) =>
  sse({
    object: "chat.completion.chunk",
    choices:
      content === null && finish === null
        ? []
        : [{ delta: content === null ? {} : { content }, finish_reason: finish }],
    ...(usage === undefined ? {} : { usage }),
  });
const token = (text: string, details: unknown = null, special = false) =>
  sse({ token: { id: 1, text, special }, details });

describe("ModelStreamReader", () => {
  it("charges the model's own usage report when the stream carries one", () => {
    const reader = new ModelStreamReader(messages, 100);
    const stream =
      chunk("") +
      chunk("Hel") +
      chunk("lo") +
      chunk(null, "stop") +
      chunk(null, null, { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 }) +
      "data: [DONE]\n\n";
    // Cut at every other byte: events are only read once whole.
    const all = bytes(stream);
    const read = [];
    for (let i = 0; i < all.length; i += 2) read.push(...reader.push(all.subarray(i, i + 2)));
    reader.end();
    expect(read.map((d) => d.deltaText).join("")).toBe("Hello");
    expect(reader.finishReason).toBe("stop");
    expect(reader.usage()).toEqual({ promptTokens: 7, completionTokens: 2 });
    expect(reader.charge()).toBe(9);
  });

  it("without a report, charges the prompt's reservation plus the token events counted so far", () => {
    const reader = new ModelStreamReader(messages, 40);
    reader.push(bytes(chunk("") + chunk("a") + chunk("b") + chunk("c")));
    expect(reader.usage()).toEqual({ promptTokens: 40, completionTokens: 3 });
    const tgiReader = new ModelStreamReader(tgi, 12);
    tgiReader.push(bytes(token("x") + token("</s>", null, true)));
    // Special tokens are generated tokens too.
    expect(tgiReader.charge()).toBe(14);
    tgiReader.push(bytes(token("", { finish_reason: "eos_token", generated_tokens: 5 })));
    // TGI reports generated tokens, not the prompt: the prompt stays at its reservation.
    expect(tgiReader.usage()).toEqual({ promptTokens: 12, completionTokens: 5 });
  });

  it("is a 502 for an unreadable event, and for a stream that ends inside an event", () => {
    const reader = new ModelStreamReader(messages, 1);
    expect(() => reader.push(bytes("data: {oops\n\n"))).toThrow(expect.objectContaining({ status: 502 }));
    const cut = new ModelStreamReader(messages, 1);
    cut.push(bytes(chunk("a").slice(0, 10)));
    expect(() => cut.end()).toThrow(expect.objectContaining({ code: "model_bad_response" }));
  });
});

describe("ChatChunks", () => {
  const identity = { id: "chatcmpl-1", model: "m", created: 1 };
  const parse = (text: string) =>
    text
      .split("\n\n")
      .filter((event) => event !== "")
      .map((event) => event.replace(/^data: /, ""))
      .map((data) => (data === "[DONE]" ? data : JSON.parse(data)));

  it("writes the role first, content deltas, the finish reason last, then [DONE]; no usage unless asked", () => {
    const chunks = new ChatChunks(identity, false);
    const events = parse(
      chunks.content("") +
        chunks.content("Hi") +
        chunks.finish("length", { promptTokens: 3, completionTokens: 1 }),
    );
    expect(events.map((e) => (e === "[DONE]" ? e : e.choices[0].delta))).toEqual([
      { role: "assistant", content: "" },
      { content: "Hi" },
      {},
      "[DONE]",
    ]);
    expect(events[2].choices[0].finish_reason).toBe("length");
    expect(events.slice(0, -1).every((e) => !("usage" in e) && e.object === "chat.completion.chunk")).toBe(
      true,
    );
    expect(events[0]).toMatchObject({ id: "chatcmpl-1", model: "m", created: 1 });
  });

  it("with include_usage: usage null on every chunk, then a usage chunk with no choices", () => {
    const chunks = new ChatChunks(identity, true);
    const events = parse(
      chunks.content("a") + chunks.finish("stop", { promptTokens: 5, completionTokens: 1 }),
    );
    const [done, last, ...before] = events.reverse();
    expect(done).toBe("[DONE]");
    expect(last).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 },
    });
    expect(before.every((e) => e.usage === null)).toBe(true);
  });

  it("writes each chunk as the JSON of OpenAI's chunk object, whatever the id, model and text hold", () => {
    fc.assert(
      fc.property(
        fc.record({ id: fc.string(), model: fc.string(), created: fc.nat() }),
        fc.boolean(),
        fc.array(fc.string({ unit: "binary", minLength: 1 }), { maxLength: 4 }),
        (identity, includeUsage, texts) => {
          const chunks = new ChatChunks(identity, includeUsage);
          const expected = (delta: Record<string, string>, finishReason: string | null) =>
            sse({
              id: identity.id,
              object: "chat.completion.chunk",
              created: identity.created,
              model: identity.model,
              choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
              ...(includeUsage ? { usage: null } : {}),
            });
          const [first = "", ...rest] = texts;
          const role = expected({ role: "assistant", content: "" }, null);
          expect(chunks.content(first)).toBe(role + (first === "" ? "" : expected({ content: first }, null)));
          for (const text of rest) expect(chunks.content(text)).toBe(expected({ content: text }, null));
          const usage = { promptTokens: 2, completionTokens: texts.length };
          expect(chunks.finish("stop", usage).startsWith(expected({}, "stop"))).toBe(true);
        },
      ),
    );
  });

  it("writes a failure as OpenAI's error object", () => {
    const chunks = new ChatChunks(identity, false);
    const [event] = parse(chunks.error(upstream(502, "model_error", "broke")));
    expect(event).toEqual({
      error: { message: "broke", type: "api_error", param: null, code: "model_error" },
    });
  });
});
