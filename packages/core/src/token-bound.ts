/**
 * The token bound of a model call, read from its body and written into it: the one place where the
 * chat route and raw invocations learn how much a call may produce. A call reserves an upper bound
 * of prompt plus output, and the model is told the output bound, so it cannot use more than was
 * reserved (docs/adr/0004-exact-limits.md, "Bounds").
 */
import type { TierSpec } from "./config";
import { invalidRequest } from "./errors";
import { promptTokenBound } from "./limits";
import type { ModelProtocol } from "./protocols/protocol";
import { protocolFor, replyTokens } from "./protocols/registry";

/** Every field through which a body can ask for output length; all are read, the largest wins. */
export const LENGTH_FIELDS = [
  "max_tokens",
  "max_completion_tokens",
  "max_new_tokens",
  "parameters.max_new_tokens",
] as const;
/** Fields that ask for several outputs (OpenAI's `n`, TGI's `best_of`): each may be as long as the bound. */
export const SEQUENCE_FIELDS = ["n", "best_of", "parameters.best_of"] as const;

type Json = Record<string, unknown>;

/** `application/json` and every `type/subtype+json`, in any case, whatever its parameters. */
export function isJsonMediaType(contentType: string | undefined): boolean {
  const mediaType = contentType?.split(";")[0]?.trim().toLowerCase() ?? "";
  return mediaType === "application/json" || /^[\w.!#$&^+-]+\/[\w.!#$&^+-]+\+json$/.test(mediaType);
}

export interface LengthBound {
  /** The most tokens one output may have: the largest length field, or the tier's default. */
  maxTokens: number;
  /** How many outputs the body asks for (1 unless it sets `n` or `best_of`). */
  sequences: number;
  /** The field that set `maxTokens`, or null when the tier's default did. */
  field: string | null;
}

/**
 * Reads every length field together: a value that is not a positive integer is a 400 naming its
 * field, the largest value is the bound, above the tier's cap is a 400, and none gives the default.
 */
export function lengthBound(body: Json, tier: TierSpec): LengthBound {
  let bound: { value: number; field: string } | undefined;
  for (const field of LENGTH_FIELDS) {
    const value = positiveInteger(body, field);
    if (value !== undefined && (!bound || value > bound.value)) bound = { value, field };
  }
  if (bound && bound.value > tier.maxTokens.cap) {
    throw invalidRequest(
      "max_tokens_too_large",
      `${bound.field}: ${bound.value} is above this tier's cap of ${tier.maxTokens.cap}`,
      bound.field,
    );
  }
  const sequences = Math.max(1, ...SEQUENCE_FIELDS.map((field) => positiveInteger(body, field) ?? 1));
  return { maxTokens: bound?.value ?? tier.maxTokens.default, sequences, field: bound?.field ?? null };
}

/** A model call ready to reserve and send. */
export interface BoundCall {
  /** What to send: the JSON Atrium read, with the bound written in; or the caller's bytes, unread. */
  body: Buffer;
  /** Tokens to reserve: an upper bound of prompt plus output. */
  reserved: number;
  /** The output part of `reserved` (0 when the body could not be read). */
  outputBound: number;
  /** The length field that set the bound, if one did. */
  field: string | null;
  /** The protocol the body is written in, when Atrium knows it (a streamed reply is read by it). */
  protocol?: ModelProtocol;
}

/**
 * Bounds a raw invocation. A JSON object is re-serialized from what was read (so the model reads
 * exactly what was bounded) with the bound in the field its protocol reads, when the body set none:
 * `parameters.max_new_tokens` for TGI-style `{"inputs": ...}` (which also asks for `details`, so the
 * reply counts its tokens), `max_tokens` otherwise. Any other body reserves the tier's `rawCallTokens`.
 * A Messages body that streams is also made to ask for usage (`stream_options.include_usage`), so the
 * stream is metered from the model's own count.
 */
export function boundInvocation(body: Buffer, contentType: string | undefined, tier: TierSpec): BoundCall {
  const json = isJsonMediaType(contentType) ? parseObject(body) : undefined;
  if (!json) return { body, reserved: tier.rawCallTokens, outputBound: 0, field: null };
  const bound = lengthBound(json, tier);
  const tgi = Object.hasOwn(json, "inputs");
  if (tgi) {
    const parameters = json.parameters ?? {};
    if (!isObject(parameters)) {
      throw invalidRequest("invalid_request", "parameters: must be an object", "parameters");
    }
    const maxNewTokens = parameters.max_new_tokens ?? bound.maxTokens;
    json.parameters = { ...parameters, max_new_tokens: maxNewTokens, details: true };
  }
  // A body with both `messages` and `inputs` gets both fields: either protocol may be the one that reads it.
  if (!tgi || Object.hasOwn(json, "messages")) json.max_tokens ??= bound.maxTokens;
  if (Object.hasOwn(json, "messages") && json.stream === true) {
    const options = isObject(json.stream_options) ? json.stream_options : {};
    json.stream_options = { ...options, include_usage: true };
  }
  const protocol = protocolFor(json);
  const text = JSON.stringify(json);
  const outputBound = bound.maxTokens * bound.sequences;
  return {
    body: Buffer.from(text, "utf8"),
    // The serialized body holds every prompt character in at least its UTF-8 bytes.
    reserved: promptTokenBound([text]) + outputBound,
    outputBound,
    field: bound.field,
    ...(protocol ? { protocol } : {}),
  };
}

/**
 * Tokens a model's reply says the call used, or undefined when it says nothing Atrium can read, as
 * the protocol modules read it: OpenAI's `usage`, or TGI's `details` (generated tokens, plus the
 * prompt part of the reservation, since TGI does not count the prompt). The limiter never charges
 * more than was reserved.
 */
export function reportedUsage(reply: Uint8Array, contentType: string, call: BoundCall): number | undefined {
  if (!isJsonMediaType(contentType)) return undefined;
  return replyTokens(parseJson(Buffer.from(reply)), call.reserved - call.outputBound);
}

/** A field's value when it is set; a 400 naming the field when it is set to anything but a positive integer. */
function positiveInteger(body: Json, field: string): number | undefined {
  const [head, tail] = field.split(".") as [string, string | undefined];
  const holder = tail === undefined ? body : body[head];
  const key = tail ?? head;
  if (!isObject(holder) || !Object.hasOwn(holder, key)) return undefined;
  const value = holder[key];
  // null is "not set", as OpenAI's API reads it.
  if (value === null) return undefined;
  // Huge integers pass here and meet the cap (or the limits) next, with a clearer message.
  if (typeof value === "number" && Number.isInteger(value) && value > 0) return value;
  throw invalidRequest(
    "invalid_request",
    `${field}: must be a positive integer, not ${describe(value)}`,
    field,
  );
}

function describe(value: unknown): string {
  if (typeof value === "string") return `the string ${JSON.stringify(value.slice(0, 20))}`;
  if (typeof value === "number") return String(value);
  if (typeof value === "boolean") return `the boolean ${value}`;
  return Array.isArray(value) ? "an array" : "an object";
}

function parseObject(body: Buffer): Json | undefined {
  const parsed = parseJson(body);
  return isObject(parsed) ? parsed : undefined;
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
