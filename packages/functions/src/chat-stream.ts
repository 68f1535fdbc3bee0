import { handler as chat } from "./chat";
import { streamedProxyHandler } from "./lib/stream-response";

/**
 * What the deployed POST /v1/chat/completions runs: the route table's chat handler, answered in
 * API Gateway's streaming format because the stack sets that route's integration to STREAM.
 */
export const handler = streamedProxyHandler(chat);
