import { createHash } from "node:crypto";

/**
 * A deterministic stand-in for an LLM serving container (LMI/TGI style). It has no weights: replies are
 * built from the request so that the same input always gives the same output, and every token count it
 * reports is exactly what `countTokens` says about the text it returned.
 */

const TOKEN_PATTERN = /[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_]/gu;
const DEFAULT_MAX_TOKENS = 256;
const ECHO_TOKENS = 12;
// A fixed timestamp keeps whole responses byte-identical across runs.
export const CREATED = 1_700_000_000;
const KNOWN_ROLES = new Set(["system", "developer", "user", "assistant", "tool"]);

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

interface ChatMessage {
  role: string;
  text: string;
}

interface ChatRequest {
  messages: ChatMessage[];
  maxTokens: number;
  stop: string[];
  includeUsage: boolean;
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

interface TgiRequest {
  inputs: string;
  maxTokens: number;
  stop: string[];
}

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
  if (!acceptsJson(input.accept)) {
    return reply(
      errorReply(406, `This model only produces application/json, not '${input.accept}'`, "accept"),
    );
  }
  if (!isJsonContentType(input.contentType)) return reply(binaryReply(input));
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

/** Validates the chat Messages API subset; returns the request or an error message led by the field. */
function parseChatRequest(raw: Record<string, unknown>, streaming: boolean): ChatRequest | string {
  const { messages } = raw;
  if (!Array.isArray(messages) || messages.length === 0) return "messages: must be a non-empty array";
  const parsed: ChatMessage[] = [];
  for (const [i, message] of messages.entries()) {
    const one = parseMessage(message, `messages.${i}`);
    if (typeof one === "string") return one;
    parsed.push(one);
  }
  if (raw.stream === true && !streaming) return "stream: streaming needs InvokeEndpointWithResponseStream";
  const includeUsage = parseIncludeUsage(raw.stream_options);
  if (typeof includeUsage === "string") return includeUsage;
  const sampling = checkSampling(raw);
  if (sampling) return sampling;
  const maxTokens = parseMaxTokens(raw.max_tokens, "max_tokens");
  if (typeof maxTokens === "string") return maxTokens;
  const stop = parseStop(raw.stop, "stop");
  if (typeof stop === "string") return stop;
  return { messages: parsed, maxTokens, stop, includeUsage };
}

function parseIncludeUsage(options: unknown): boolean | string {
  if (options === undefined || options === null) return false;
  if (!isRecord(options)) return "stream_options: must be an object";
  const { include_usage: includeUsage } = options;
  if (includeUsage === undefined || includeUsage === null) return false;
  if (typeof includeUsage !== "boolean") return "stream_options.include_usage: must be a boolean";
  return includeUsage;
}

function parseMessage(message: unknown, path: string): ChatMessage | string {
  if (!isRecord(message)) return `${path}: must be an object with role and content`;
  const { role, content } = message;
  if (typeof role !== "string" || !KNOWN_ROLES.has(role)) {
    return `${path}.role: must be one of ${[...KNOWN_ROLES].join(", ")}`;
  }
  if (typeof content === "string") return { role, text: content };
  if (!Array.isArray(content)) return `${path}.content: must be a string or an array of text parts`;
  const texts: string[] = [];
  for (const [j, part] of content.entries()) {
    if (!isRecord(part) || part.type !== "text" || typeof part.text !== "string") {
      return `${path}.content.${j}: must be {"type": "text", "text": string}`;
    }
    texts.push(part.text);
  }
  return { role, text: texts.join("\n") };
}

function checkSampling(raw: Record<string, unknown>): string | undefined {
  const { temperature, top_p: topP, seed } = raw;
  if (temperature !== undefined && temperature !== null) {
    if (typeof temperature !== "number" || !(temperature >= 0 && temperature <= 2)) {
      return "temperature: must be a number between 0 and 2";
    }
  }
  if (topP !== undefined && topP !== null) {
    if (typeof topP !== "number" || !(topP > 0 && topP <= 1)) return "top_p: must be a number in (0, 1]";
  }
  if (seed !== undefined && seed !== null && !Number.isInteger(seed)) return "seed: must be an integer";
  return undefined;
}

function parseTgiRequest(raw: Record<string, unknown>): TgiRequest | string {
  const { inputs, parameters } = raw;
  if (typeof inputs !== "string" || inputs.length === 0) return "inputs: must be a non-empty string";
  if (parameters === undefined || parameters === null)
    return { inputs, maxTokens: DEFAULT_MAX_TOKENS, stop: [] };
  if (!isRecord(parameters)) return "parameters: must be an object";
  const maxTokens = parseMaxTokens(parameters.max_new_tokens, "parameters.max_new_tokens");
  if (typeof maxTokens === "string") return maxTokens;
  const stop = parseStop(parameters.stop, "parameters.stop");
  if (typeof stop === "string") return stop;
  return { inputs, maxTokens, stop };
}

function parseMaxTokens(value: unknown, path: string): number | string {
  if (value === undefined || value === null) return DEFAULT_MAX_TOKENS;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    return `${path}: must be a positive integer`;
  }
  return value;
}

function parseStop(value: unknown, path: string): string[] | string {
  if (value === undefined || value === null) return [];
  if (typeof value === "string") return value.length > 0 ? [value] : `${path}: must not be empty`;
  if (Array.isArray(value) && value.every((s): s is string => typeof s === "string" && s.length > 0)) {
    return value;
  }
  return `${path}: must be a string or an array of non-empty strings`;
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

function acceptsJson(accept: string | undefined): boolean {
  if (!accept) return true;
  return accept.split(",").some((range) => {
    const mediaType = range.split(";")[0]?.trim().toLowerCase() ?? "";
    return mediaType === "*/*" || mediaType === "application/*" || mediaType.includes("json");
  });
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

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
