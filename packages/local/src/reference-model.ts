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
const CREATED = 1_700_000_000;
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
}

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
  if (!acceptsJson(input.accept)) {
    return errorReply(406, `This model only produces application/json, not '${input.accept}'`, "accept");
  }
  if (!isJsonContentType(input.contentType)) return binaryReply(input);
  let parsed: unknown;
  try {
    parsed = JSON.parse(input.body.toString("utf8"));
  } catch {
    return errorReply(400, "The request body is not valid JSON", null);
  }
  if (!isRecord(parsed)) return errorReply(400, "The request body must be a JSON object", null);
  if ("messages" in parsed) return chatReply(input, parsed);
  if ("inputs" in parsed) return tgiReply(input, parsed);
  return errorReply(
    400,
    "Expected a chat request with 'messages' or a generation request with 'inputs'",
    null,
  );
}

function chatReply(input: ReferenceModelInput, raw: Record<string, unknown>): ModelReply {
  const parsed = parseChatRequest(raw);
  if (typeof parsed === "string") return errorReply(400, parsed, paramOf(parsed));
  const digest = sha256Hex(JSON.stringify(parsed.messages.map((m) => [m.role, m.text])));
  const lastUser = [...parsed.messages].reverse().find((m) => m.role === "user") ?? parsed.messages.at(-1);
  const full = composeReply(input, lastUser?.text ?? "", digest);
  const { text, finishReason } = limitTokens(full, parsed.maxTokens, parsed.stop);
  const promptTokens = parsed.messages.reduce((sum, m) => sum + countTokens(m.role) + countTokens(m.text), 0);
  const completionTokens = countTokens(text);
  return jsonReply(200, {
    id: `chatcmpl-${digest.slice(0, 24)}`,
    object: "chat.completion",
    created: CREATED,
    model: modelName(input),
    choices: [{ index: 0, message: { role: "assistant", content: text }, finish_reason: finishReason }],
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    },
  });
}

function tgiReply(input: ReferenceModelInput, raw: Record<string, unknown>): ModelReply {
  const parsed = parseTgiRequest(raw);
  if (typeof parsed === "string") return errorReply(400, parsed, paramOf(parsed));
  const full = composeReply(input, parsed.inputs, sha256Hex(parsed.inputs));
  const { text } = limitTokens(full, parsed.maxTokens, parsed.stop);
  return jsonReply(200, [{ generated_text: text }]);
}

function binaryReply(input: ReferenceModelInput): ModelReply {
  return jsonReply(200, {
    endpoint: input.endpointName,
    bytes: input.body.length,
    sha256: sha256Hex(input.body),
  });
}

/** Validates the chat Messages API subset; returns the request or an error message led by the field. */
function parseChatRequest(raw: Record<string, unknown>): ChatRequest | string {
  const { messages } = raw;
  if (!Array.isArray(messages) || messages.length === 0) return "messages: must be a non-empty array";
  const parsed: ChatMessage[] = [];
  for (const [i, message] of messages.entries()) {
    const one = parseMessage(message, `messages.${i}`);
    if (typeof one === "string") return one;
    parsed.push(one);
  }
  if (raw.stream === true)
    return "stream: streaming needs InvokeEndpointWithResponseStream, not emulated here";
  const sampling = checkSampling(raw);
  if (sampling) return sampling;
  const maxTokens = parseMaxTokens(raw.max_tokens, "max_tokens");
  if (typeof maxTokens === "string") return maxTokens;
  const stop = parseStop(raw.stop, "stop");
  if (typeof stop === "string") return stop;
  return { messages: parsed, maxTokens, stop };
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
function limitTokens(
  text: string,
  maxTokens: number,
  stop: string[],
): { text: string; finishReason: "stop" | "length" } {
  let stopped = text;
  for (const s of stop) {
    const at = stopped.indexOf(s);
    if (at >= 0) stopped = stopped.slice(0, at);
  }
  if (countTokens(stopped) <= maxTokens) return { text: stopped, finishReason: "stop" };
  return { text: cutToTokens(stopped, maxTokens), finishReason: "length" };
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
