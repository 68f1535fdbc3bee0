/**
 * The OpenAI-compatible Messages API that vLLM, LMI, TGI's Messages API and the reference model speak:
 * the chat request Atrium accepts, the body it sends the model, and the model's buffered replies and
 * streamed `chat.completion.chunk` events, read.
 */
import * as z from "../zod";
import { type ModelProtocol, parseJsonText, type StreamDelta, unreadableReply } from "./protocol";

const TextPart = z.object({ type: z.literal("text"), text: z.string() });
const Message = z.object({
  role: z.enum(["system", "developer", "user", "assistant", "tool"]),
  content: z.union([z.string(), z.array(TextPart).check(z.minLength(1))]),
  name: z.optional(z.string().check(z.maxLength(64))),
});

/**
 * The OpenAI chat request fields Atrium forwards; other fields are ignored, as many clients send extras.
 * Length fields (max_tokens, max_completion_tokens, ...) are read by lengthBound, as on every route.
 */
export const ChatRequest = z.object({
  model: z.string().check(z.minLength(1), z.maxLength(128)),
  messages: z.array(Message).check(z.minLength(1), z.maxLength(2048)),
  temperature: z.optional(z.number().check(z.gte(0), z.lte(2))),
  top_p: z.optional(z.number().check(z.gte(0), z.lte(1))),
  stop: z.optional(z.union([z.string(), z.array(z.string()).check(z.maxLength(4))])),
  seed: z.optional(z.number().check(z.int())),
  n: z.optional(z.literal(1, { error: "only n = 1 is supported" })),
  stream: z.optional(z.boolean()),
  stream_options: z.nullish(z.object({ include_usage: z.optional(z.boolean()) })),
});
export type ChatRequest = z.infer<typeof ChatRequest>;

const Count = z.number().check(z.int(), z.nonnegative());
const SplitUsage = z.object({ prompt_tokens: Count, completion_tokens: Count });
const Usage = z.object({ ...SplitUsage.shape, total_tokens: z.optional(Count) });

const Reply = z.object({
  choices: z
    .array(
      z.object({
        index: z.optional(z.number().check(z.int())),
        message: z.object({ role: z.string(), content: z.nullable(z.string()) }),
        finish_reason: z.nullable(z.string()),
      }),
    )
    .check(z.minLength(1)),
  usage: Usage,
});

const Chunk = z.object({
  object: z.literal("chat.completion.chunk"),
  // The usage chunk has no choices; Atrium asks for one choice, so only the first is read.
  choices: z.array(
    z.object({
      delta: z.object({ content: z.nullish(z.string()) }),
      finish_reason: z.nullish(z.string()),
    }),
  ),
  usage: z.nullish(Usage),
});

/** What a prompt's messages weigh for the token bound: every character the model reads. */
export function promptTexts(request: ChatRequest): string[] {
  return request.messages.map((message) => {
    const text =
      typeof message.content === "string" ? message.content : message.content.map((p) => p.text).join("");
    return `${message.role}${message.name ?? ""}${text}`;
  });
}

/**
 * The body sent to the model. `max_tokens` is always set, so the model never generates more than was
 * reserved; a stream always asks for usage, so it is metered from the model's own count.
 */
export function modelRequest(
  request: ChatRequest,
  maxTokens: number,
  options: { stream?: boolean } = {},
): { body: Buffer; contentType: string; accept?: string } {
  const body = {
    messages: request.messages,
    max_tokens: maxTokens,
    ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
    ...(request.top_p !== undefined ? { top_p: request.top_p } : {}),
    ...(request.stop !== undefined ? { stop: request.stop } : {}),
    ...(request.seed !== undefined ? { seed: request.seed } : {}),
    ...(options.stream ? { stream: true, stream_options: { include_usage: true } } : {}),
  };
  const call = { body: Buffer.from(JSON.stringify(body)), contentType: "application/json" };
  // A stream sends no Accept: containers stream SSE when asked in the body, and some refuse a non-JSON Accept.
  return options.stream ? call : { ...call, accept: "application/json" };
}

export interface ChatReply {
  choices: { content: string | null; finishReason: string }[];
  usage: { promptTokens: number; completionTokens: number };
}

/** A buffered reply, read; one Atrium cannot read is a 502 naming the model. */
export function parseReply(body: Uint8Array, model: string): ChatReply {
  const parsed = Reply.safeParse(parseJsonText(Buffer.from(body).toString("utf8")));
  if (!parsed.success) throw unreadableReply(model);
  const { choices, usage } = parsed.data;
  return {
    choices: choices.map((choice) => ({
      content: choice.message.content,
      finishReason: choice.finish_reason ?? "stop",
    })),
    usage: { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens },
  };
}

/** The OpenAI `chat.completion` answered to the tenant. */
export function chatCompletion(reply: ChatReply, answer: { id: string; model: string; created: number }) {
  const { promptTokens, completionTokens } = reply.usage;
  return {
    id: answer.id,
    object: "chat.completion",
    created: answer.created,
    model: answer.model,
    choices: reply.choices.map((choice, index) => ({
      index,
      message: { role: "assistant", content: choice.content },
      finish_reason: choice.finishReason,
      logprobs: null,
    })),
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    },
  };
}

/** One `chat.completion.chunk` event's data, read. */
export function parseChunk(data: string): StreamDelta {
  const parsed = Chunk.safeParse(parseJsonText(data));
  if (!parsed.success) throw unreadableReply();
  const [choice] = parsed.data.choices;
  const usage = parsed.data.usage;
  const deltaText = choice?.delta.content ?? "";
  return {
    deltaText,
    // vLLM, TGI's Messages API and the reference model send one chunk per generated token.
    tokens: deltaText === "" ? 0 : 1,
    finishReason: choice?.finish_reason ?? null,
    ...(usage
      ? { usage: { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens } }
      : {}),
  };
}

/** Tokens a buffered reply's `usage` says the call used: `total_tokens`, else prompt plus completion. */
function usageTokens(reply: unknown): number | undefined {
  const usage = z.object({ usage: z.looseObject({}) }).safeParse(reply);
  if (!usage.success) return undefined;
  const total = Count.safeParse(usage.data.usage.total_tokens);
  if (total.success) return total.data;
  const split = SplitUsage.safeParse(usage.data.usage);
  return split.success ? split.data.prompt_tokens + split.data.completion_tokens : undefined;
}

export const messages: ModelProtocol = {
  name: "messages",
  speaks: (body) => Object.hasOwn(body, "messages"),
  replyTokens: (reply) => usageTokens(reply),
  streamEvent: parseChunk,
};
