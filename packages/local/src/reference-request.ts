/** The request subset the reference model understands: the chat Messages API and TGI's `inputs`, checked. */

const DEFAULT_MAX_TOKENS = 256;
const KNOWN_ROLES = new Set(["system", "developer", "user", "assistant", "tool"]);

export interface ChatMessage {
  role: string;
  text: string;
}

export interface ChatRequest {
  messages: ChatMessage[];
  maxTokens: number;
  stop: string[];
  includeUsage: boolean;
}

export interface TgiRequest {
  inputs: string;
  maxTokens: number;
  stop: string[];
}

/** Validates the chat Messages API subset; returns the request or an error message led by the field. */
export function parseChatRequest(raw: Record<string, unknown>, streaming: boolean): ChatRequest | string {
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

export function parseTgiRequest(raw: Record<string, unknown>): TgiRequest | string {
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

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
