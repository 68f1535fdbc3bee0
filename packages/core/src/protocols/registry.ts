/** The model protocols Atrium reads; a new container protocol is one module added here. */
import { messages } from "./messages";
import type { ModelProtocol } from "./protocol";
import { tgi } from "./tgi";

/** In the order replies are tried: a body with both `messages` and `inputs` may be answered in either. */
export const PROTOCOLS: readonly ModelProtocol[] = [messages, tgi];

/** The protocol a request body is written in, or undefined when no protocol Atrium knows reads it. */
export function protocolFor(body: Record<string, unknown>): ModelProtocol | undefined {
  return PROTOCOLS.find((protocol) => protocol.speaks(body));
}

/** Tokens a buffered reply says the call used, by the first protocol that can read it. */
export function replyTokens(reply: unknown, promptReserved: number): number | undefined {
  for (const protocol of PROTOCOLS) {
    const tokens = protocol.replyTokens(reply, promptReserved);
    if (tokens !== undefined) return tokens;
  }
  return undefined;
}
