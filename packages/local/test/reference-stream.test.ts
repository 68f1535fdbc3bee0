import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { countTokens, invokeReferenceModel, type ModelReply, tokenPieces } from "../src/reference-model";
import { type ModelStream, streamReferenceModel } from "../src/reference-stream";

interface ChatChunk {
  id: string;
  object: string;
  model: string;
  choices: { delta: { role?: string; content?: string }; finish_reason: string | null }[];
  usage?: { completion_tokens: number } | null;
}

interface TgiEvent {
  token: { text: string; special: boolean };
  generated_text: string | null;
  details: { finish_reason: string; generated_tokens: number } | null;
}

const input = (body: unknown) => ({
  endpointName: "ref-ep",
  body: Buffer.from(JSON.stringify(body)),
  contentType: "application/json",
});

function streamOf(body: unknown): ModelStream {
  const streamed = streamReferenceModel(input(body));
  if (!("events" in streamed)) throw new Error(`expected a stream, got ${streamed.body.toString("utf8")}`);
  return streamed;
}

const dataOf = (event: string) => event.replace(/^data: ?/, "").replace(/\n\n$/, "");
const chunksOf = (stream: ModelStream) =>
  stream.events.slice(0, -1).map((e) => JSON.parse(dataOf(e)) as ChatChunk);
const bufferedJson = <T>(reply: ModelReply) => JSON.parse(reply.body.toString("utf8")) as T;

describe("tokenPieces", () => {
  it.each([
    ["", []],
    ["Hello, world!", ["Hello", ",", " world", "!"]],
    ["  lead and trail  ", ["  lead", " and", " trail  "]],
    ["   ", ["   "]],
  ])("cuts %j after each token", (text, pieces) => {
    expect(tokenPieces(text)).toEqual(pieces);
  });

  it("always joins back to the text, one piece per token", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), (text) => {
        const pieces = tokenPieces(text);
        expect(pieces.join("")).toBe(text);
        if (countTokens(text) > 0) expect(pieces).toHaveLength(countTokens(text));
      }),
    );
  });
});

describe("the reference model's streams", () => {
  it("streams, for any chat request, the text and finish reason of the buffered answer", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, unit: "grapheme" }),
        fc.integer({ min: 1, max: 40 }),
        fc.option(fc.constantFrom("digest", ".", "e"), { nil: undefined }),
        (text, maxTokens, stop) => {
          const body = { messages: [{ role: "user", content: text }], max_tokens: maxTokens, stop };
          const whole = bufferedJson<{
            choices: { message: { content: string }; finish_reason: string }[];
          }>(invokeReferenceModel(input(body)));
          const chunks = chunksOf(streamOf({ ...body, stream: true }));
          expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe(
            whole.choices[0]?.message.content,
          );
          expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe(whole.choices[0]?.finish_reason);
        },
      ),
    );
  });

  it("streams, for any TGI request, the buffered generated_text with the token count in details", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.integer({ min: 1, max: 40 }), (inputs, maxNewTokens) => {
        const body = { inputs, parameters: { max_new_tokens: maxNewTokens } };
        const [whole] = bufferedJson<{ generated_text: string }[]>(invokeReferenceModel(input(body)));
        const events = streamOf(body).events.map((e) => JSON.parse(dataOf(e)) as TgiEvent);
        expect(events.map((e) => e.token.text).join("")).toBe(whole?.generated_text);
        expect(events.at(-1)?.generated_text).toBe(whole?.generated_text);
        expect(events.at(-1)?.details?.generated_tokens).toBe(countTokens(whole?.generated_text ?? ""));
      }),
    );
  });

  it("says why a TGI stream ended: length, stop sequence or end of text", () => {
    const finish = (parameters: Record<string, unknown>) =>
      (JSON.parse(dataOf(streamOf({ inputs: "why did it end", parameters }).events.at(-1) ?? "")) as TgiEvent)
        .details?.finish_reason;
    expect(finish({ max_new_tokens: 2 })).toBe("length");
    expect(finish({ stop: ["digest"] })).toBe("stop_sequence");
    expect(finish({})).toBe("eos_token");
  });

  it("sends the OpenAI chunk sequence: role first, one delta per token, finish, [DONE]", () => {
    const stream = streamOf({ messages: [{ role: "user", content: "order" }], max_tokens: 5 });
    expect(stream.contentType).toBe("text/event-stream");
    expect(stream.events.every((e) => e.startsWith("data: ") && e.endsWith("\n\n"))).toBe(true);
    expect(stream.events.at(-1)).toBe("data: [DONE]\n\n");
    const chunks = chunksOf(stream);
    expect(chunks.map((c) => c.choices[0]?.delta)).toEqual([
      { role: "assistant", content: "" },
      ...tokenPieces(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).map((content) => ({
        content,
      })),
      {},
    ]);
    expect(chunks).toHaveLength(5 + 2);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks.every((c) => c.object === "chat.completion.chunk" && c.model === "ref-ep")).toBe(true);
  });

  it("adds the usage chunk only when include_usage is set, equal to the buffered usage", () => {
    const body = { messages: [{ role: "user", content: "usage please" }] };
    const withUsage = chunksOf(streamOf({ ...body, stream_options: { include_usage: true } }));
    const whole = bufferedJson<{ usage: unknown }>(invokeReferenceModel(input(body)));
    expect(withUsage.at(-1)).toMatchObject({ choices: [], usage: whole.usage });
    expect(withUsage.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    expect(chunksOf(streamOf(body)).every((c) => !("usage" in c))).toBe(true);
  });

  it("answers a bad request as a whole 400 reply, before any token", () => {
    const bad = streamReferenceModel(input({ messages: [], stream: true }));
    expect("status" in bad && bad.status).toBe(400);
    const badOptions = streamReferenceModel(
      input({ messages: [{ role: "user", content: "x" }], stream_options: { include_usage: "yes" } }),
    );
    expect("status" in badOptions && bufferedJson<{ error: { param: string } }>(badOptions).error.param).toBe(
      "stream_options.include_usage",
    );
  });
});
