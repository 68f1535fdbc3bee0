/**
 * Hugging Face TGI's protocol (`{"inputs": ..., "parameters": {...}}` bodies): buffered replies count
 * their output in `details.generated_tokens` (one generation or an array of them), and streams send
 * one token event per token, the last one carrying `details`. TGI does not report prompt tokens.
 */
import * as z from "../zod";
import { type ModelProtocol, parseJsonText, type StreamDelta, unreadableReply } from "./protocol";

const Count = z.number().check(z.int(), z.nonnegative());

const Generation = z.object({
  details: z.object({
    generated_tokens: Count,
    best_of_sequences: z.optional(z.unknown()),
  }),
});

const BestOfSequence = z.object({ generated_tokens: Count });

const TokenEvent = z.object({
  token: z.object({ text: z.string(), special: z.optional(z.boolean()) }),
  details: z.nullish(z.object({ finish_reason: z.string(), generated_tokens: Count })),
});

/** Generated tokens of a buffered reply (every generation, with best_of's other sequences), if it reports them. */
export function generatedTokens(reply: unknown): number | undefined {
  const generations = Array.isArray(reply) ? reply : [reply];
  if (generations.length === 0) return undefined;
  let generated = 0;
  for (const generation of generations) {
    const parsed = Generation.safeParse(generation);
    if (!parsed.success) return undefined;
    const { generated_tokens, best_of_sequences } = parsed.data.details;
    generated += generated_tokens;
    const others = Array.isArray(best_of_sequences) ? best_of_sequences : [];
    for (const other of others) {
      const sequence = BestOfSequence.safeParse(other);
      if (sequence.success) generated += sequence.data.generated_tokens;
    }
  }
  return generated;
}

/** One `/generate_stream` token event; special tokens (end of sequence...) add no text, as in TGI's `generated_text`. */
export function parseTokenEvent(data: string): StreamDelta {
  const parsed = TokenEvent.safeParse(parseJsonText(data));
  if (!parsed.success) throw unreadableReply();
  const { token, details } = parsed.data;
  return {
    deltaText: token.special ? "" : token.text,
    tokens: 1,
    finishReason: details?.finish_reason ?? null,
    ...(details ? { usage: { promptTokens: null, completionTokens: details.generated_tokens } } : {}),
  };
}

export const tgi: ModelProtocol = {
  name: "tgi",
  speaks: (body) => Object.hasOwn(body, "inputs"),
  replyTokens(reply, promptReserved) {
    const generated = generatedTokens(reply);
    return generated === undefined ? undefined : promptReserved + generated;
  },
  streamEvent: parseTokenEvent,
};
