import { createHash } from "node:crypto";
import {
  type ChatGeneration,
  CREATED,
  generate,
  type ModelReply,
  type ReferenceModelInput,
  type TgiGeneration,
  tokenPieces,
} from "./reference-model";

/**
 * The reference model's streamed answers, one server-sent event per generated token, the way LLM
 * containers stream on SageMaker: OpenAI `chat.completion.chunk`s for Messages API bodies (vLLM, LMI,
 * TGI's Messages API) and TGI token events for `{"inputs": ...}` bodies. Joining the streamed text
 * gives exactly the text of the buffered answer to the same request.
 */

export interface ModelStream {
  contentType: string;
  /** Whole SSE events (`data: ...\n\n`), in order; the emulator paces and splits them. */
  events: string[];
}

/** The events to stream, or the whole reply when the request ends before any token (bad request...). */
export function streamReferenceModel(input: ReferenceModelInput): ModelStream | ModelReply {
  const generated = generate(input, true);
  switch (generated.kind) {
    case "reply":
      return generated.reply;
    case "chat":
      return { contentType: "text/event-stream", events: chatEvents(generated) };
    case "tgi":
      return { contentType: "text/event-stream", events: tgiEvents(generated) };
  }
}

/** OpenAI's order: the role first, then content deltas, `finish_reason` last, usage if asked, [DONE]. */
function chatEvents(chat: ChatGeneration): string[] {
  const chunk = (choices: unknown[], usage?: ChatGeneration["usage"]) => ({
    id: chat.id,
    object: "chat.completion.chunk",
    created: CREATED,
    model: chat.model,
    choices,
    ...(chat.includeUsage ? { usage: usage ?? null } : {}),
  });
  const delta = (content: Record<string, string>, finishReason: string | null = null) =>
    chunk([{ index: 0, delta: content, finish_reason: finishReason }]);
  const chunks = [
    delta({ role: "assistant", content: "" }),
    ...tokenPieces(chat.text).map((piece) => delta({ content: piece })),
    delta({}, chat.finishReason),
  ];
  if (chat.includeUsage) chunks.push(chunk([], chat.usage));
  return [...chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`), "data: [DONE]\n\n"];
}

/** TGI's /generate_stream events: one per token; the last carries `generated_text` and `details`. */
function tgiEvents(tgi: TgiGeneration): string[] {
  const pieces = tokenPieces(tgi.text);
  const finishReason = tgi.finishReason === "length" ? "length" : tgi.stopped ? "stop_sequence" : "eos_token";
  // An empty generation still ends with one (special, empty) token carrying the details.
  const tokens = pieces.length > 0 ? pieces : [""];
  return tokens.map((piece, i) => {
    const last = i === tokens.length - 1;
    const event = {
      index: i + 1,
      token: { id: tokenId(piece), text: piece, logprob: 0, special: pieces.length === 0 },
      generated_text: last ? tgi.text : null,
      details: last ? { finish_reason: finishReason, generated_tokens: pieces.length, seed: null } : null,
    };
    return `data:${JSON.stringify(event)}\n\n`;
  });
}

/** A stable stand-in for a vocabulary id. */
function tokenId(piece: string): number {
  return Number.parseInt(createHash("sha256").update(piece).digest("hex").slice(0, 4), 16);
}
