/**
 * What every model protocol module provides, so buffered and streamed calls read any container the
 * same way and a new container protocol is one new module (registered in registry.ts).
 */
import { upstream } from "../errors";

/** Tokens a model reported; `promptTokens` is null where the protocol does not count the prompt (TGI). */
export interface ModelUsage {
  promptTokens: number | null;
  completionTokens: number;
}

/** One streamed event, read: the text it adds, the finish reason when it ends the output, usage when it reports it. */
export interface StreamDelta {
  deltaText: string;
  /** Generated tokens the event carries (a token event, special or not, is one; a role or usage event none). */
  tokens: number;
  finishReason: string | null;
  usage?: ModelUsage;
}

export interface ModelProtocol {
  name: string;
  /** Whether a request body is written in this protocol. */
  speaks(body: Record<string, unknown>): boolean;
  /**
   * Tokens a buffered reply (parsed JSON) says the call used, or undefined when it says nothing this
   * protocol can read; `promptReserved` stands in for the prompt where the protocol does not count it.
   */
  replyTokens(reply: unknown, promptReserved: number): number | undefined;
  /** One server-sent event's data, read; an event this protocol cannot read is a 502. */
  streamEvent(data: string): StreamDelta;
}

/** A model's reply Atrium cannot read: the model broke its protocol, so it is the upstream's fault. */
export function unreadableReply(model?: string) {
  const who = model === undefined ? "The model" : `The model '${model}'`;
  return upstream(502, "model_bad_response", `${who} returned an unreadable reply.`);
}

/** JSON text parsed, or undefined when it is not JSON. */
export function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
