import { createHash } from "node:crypto";
import { isRecord, parseChatRequest, parseTgiRequest } from "./reference-request";

/**
 * A deterministic stand-in for an LLM serving container (LMI/TGI style). It has no weights: replies are
 * built from the request so that the same input always gives the same output, and every token count it
 * reports is exactly what `countTokens` says about the text it returned.
 */

const TOKEN_PATTERN = /[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_]/gu;
const ECHO_TOKENS = 12;
const JSON_TYPE = "application/json";
const EVENT_STREAM = "text/event-stream";
// A fixed timestamp keeps whole responses byte-identical across runs.
export const CREATED = 1_700_000_000;

export interface ModelReply {
  status: number;
  contentType: string;
  body: Buffer;
}

export interface ReferenceModelInput {
  endpointName: string;
  body: Buffer;
  contentType?: string;
  accept?: string;
  targetModel?: string;
  inferenceComponentName?: string;
}

export interface Limited {
  text: string;
  finishReason: "stop" | "length";
  /** True when a stop string (not the natural end) cut the text. */
  stopped: boolean;
}

export interface ChatGeneration extends Limited {
  kind: "chat";
  id: string;
  model: string;
  includeUsage: boolean;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

export interface TgiGeneration extends Limited {
  kind: "tgi";
}

export type Generated = ChatGeneration | TgiGeneration | { kind: "reply"; reply: ModelReply };

/** Words (letters, digits, underscore) and single punctuation marks; whitespace is free. */
export function countTokens(text: string): number {
  return text.match(TOKEN_PATTERN)?.length ?? 0;
}

export function invokeReferenceModel(input: ReferenceModelInput): ModelReply {
  const generated = generate(input, false);
  switch (generated.kind) {
    case "reply":
      return generated.reply;
    case "chat":
      return jsonReply(200, {
        id: generated.id,
        object: "chat.completion",
        created: CREATED,
        model: generated.model,
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: generated.text },
            finish_reason: generated.finishReason,
          },
        ],
        usage: generated.usage,
      });
    case "tgi":
      return jsonReply(200, [{ generated_text: generated.text }]);
  }
}

/**
 * What the model generates for a request, before it is formatted as one reply or as a stream; or the
 * whole reply when there is nothing to generate (a bad request, a non-JSON body).
 */
export function generate(input: ReferenceModelInput, streaming: boolean): Generated {
  // A stream's generations are server-sent events; everything else it answers is JSON.
  const produced = streaming ? [EVENT_STREAM, JSON_TYPE] : [JSON_TYPE];
  if (!produced.some((mediaType) => accepts(input.accept, mediaType)))
    return reply(notAcceptable(input, produced));
  if (!isJsonContentType(input.contentType)) {
    return reply(accepts(input.accept, JSON_TYPE) ? binaryReply(input) : notAcceptable(input, [JSON_TYPE]));
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(input.body.toString("utf8"));
  } catch {
    return reply(errorReply(400, "The request body is not valid JSON", null));
  }
  if (!isRecord(parsed)) return reply(errorReply(400, "The request body must be a JSON object", null));
  const generated =
    "messages" in parsed
      ? generateChat(input, parsed, streaming)
      : "inputs" in parsed
        ? generateTgi(input, parsed)
        : "Expected a chat request with 'messages' or a generation request with 'inputs'";
  return typeof generated === "string" ? reply(errorReply(400, generated, paramOf(generated))) : generated;
}

function reply(modelReply: ModelReply): Generated {
  return { kind: "reply", reply: modelReply };
}

/** The chat answer; `streaming` accepts `stream: true` and reads `stream_options`. */
function generateChat(
  input: ReferenceModelInput,
  raw: Record<string, unknown>,
  streaming: boolean,
): ChatGeneration | string {
  const parsed = parseChatRequest(raw, streaming);
  if (typeof parsed === "string") return parsed;
  const digest = sha256Hex(JSON.stringify(parsed.messages.map((m) => [m.role, m.text])));
  const lastUser = [...parsed.messages].reverse().find((m) => m.role === "user") ?? parsed.messages.at(-1);
  const full = composeReply(input, lastUser?.text ?? "", digest);
  const limited = limitTokens(full, parsed.maxTokens, parsed.stop);
  const promptTokens = parsed.messages.reduce((sum, m) => sum + countTokens(m.role) + countTokens(m.text), 0);
  const completionTokens = countTokens(limited.text);
  return {
    kind: "chat",
    ...limited,
    id: `chatcmpl-${digest.slice(0, 24)}`,
    model: modelName(input),
    includeUsage: parsed.includeUsage,
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    },
  };
}

function generateTgi(input: ReferenceModelInput, raw: Record<string, unknown>): TgiGeneration | string {
  const parsed = parseTgiRequest(raw);
  if (typeof parsed === "string") return parsed;
  const full = composeReply(input, parsed.inputs, sha256Hex(parsed.inputs));
  return { kind: "tgi", ...limitTokens(full, parsed.maxTokens, parsed.stop) };
}

function binaryReply(input: ReferenceModelInput): ModelReply {
  return jsonReply(200, {
    endpoint: input.endpointName,
    bytes: input.body.length,
    sha256: sha256Hex(input.body),
  });
}

/** The full deterministic reply: names who answered, echoes the start of the prompt, ends with a digest. */
function composeReply(input: ReferenceModelInput, prompt: string, digest: string): string {
  const serving = [`endpoint ${input.endpointName}`];
  if (input.targetModel) serving.push(`model ${input.targetModel}`);
  if (input.inferenceComponentName) serving.push(`inference component ${input.inferenceComponentName}`);
  return (
    `Reference model on ${serving.join(", ")} received: "${echoOf(prompt)}". ` +
    `This deterministic reply has digest ${digest.slice(0, 12)}.`
  );
}

/** The first few tokens of the prompt, on one line. */
function echoOf(prompt: string): string {
  const oneLine = prompt.replace(/\s+/g, " ").trim();
  const cut = cutToTokens(oneLine, ECHO_TOKENS);
  return cut.length < oneLine.length ? `${cut} …` : cut;
}

/** Applies stop sequences, then the token budget; finish_reason says which one ended the text. */
function limitTokens(text: string, maxTokens: number, stop: string[]): Limited {
  let cut = text;
  for (const s of stop) {
    const at = cut.indexOf(s);
    if (at >= 0) cut = cut.slice(0, at);
  }
  const stopped = cut.length < text.length;
  if (countTokens(cut) <= maxTokens) return { text: cut, finishReason: "stop", stopped };
  return { text: cutToTokens(cut, maxTokens), finishReason: "length", stopped };
}

/** `text` cut right after each token (whitespace goes with the next token), so the pieces join back to it. */
export function tokenPieces(text: string): string[] {
  const pieces: string[] = [];
  let start = 0;
  for (const match of text.matchAll(TOKEN_PATTERN)) {
    const end = match.index + match[0].length;
    pieces.push(text.slice(start, end));
    start = end;
  }
  const rest = text.slice(start);
  if (rest && pieces.length > 0) pieces[pieces.length - 1] += rest;
  else if (rest) pieces.push(rest);
  return pieces;
}

/** The prefix of `text` ending right after its n-th token, so countTokens(result) === n exactly. */
function cutToTokens(text: string, n: number): string {
  let end = 0;
  let seen = 0;
  for (const match of text.matchAll(TOKEN_PATTERN)) {
    if (seen === n) break;
    end = match.index + match[0].length;
    seen += 1;
  }
  return seen < n ? text : text.slice(0, end);
}

function modelName(input: ReferenceModelInput): string {
  return input.targetModel ?? input.inferenceComponentName ?? input.endpointName;
}

function isJsonContentType(contentType: string | undefined): boolean {
  const mediaType = contentType?.split(";")[0]?.trim().toLowerCase() ?? "";
  return mediaType === "application/json" || mediaType.endsWith("+json");
}

/** Whether an Accept header admits `mediaType`; for JSON, any `json` type (`+json`, jsonlines) will do. */
function accepts(accept: string | undefined, mediaType: string): boolean {
  if (!accept) return true;
  const [type] = mediaType.split("/");
  return accept.split(",").some((range) => {
    const wanted = range.split(";")[0]?.trim().toLowerCase() ?? "";
    if (wanted === "*/*" || wanted === `${type}/*` || wanted === mediaType) return true;
    return mediaType === JSON_TYPE && wanted.includes("json");
  });
}

function notAcceptable(input: ReferenceModelInput, produced: string[]): ModelReply {
  const message = `This model only produces ${produced.join(" or ")} here, not '${input.accept}'`;
  return errorReply(406, message, "accept");
}

function paramOf(message: string): string | null {
  const colon = message.indexOf(":");
  return colon > 0 ? message.slice(0, colon) : null;
}

function errorReply(status: number, message: string, param: string | null): ModelReply {
  return jsonReply(status, { error: { message, type: "invalid_request_error", param, code: null } });
}

function jsonReply(status: number, value: unknown): ModelReply {
  return { status, contentType: "application/json", body: Buffer.from(JSON.stringify(value)) };
}

function sha256Hex(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}
