/**
 * A chat call answered as OpenAI server-sent events: the model is asked to stream (and always for its
 * usage), its events are read by the Messages protocol, and the tenant gets OpenAI's chunks, the usage
 * chunk only when it asked for one.
 */
import { ChatChunks, type ChunkIdentity } from "@atrium/core/protocols/chat-chunks";
import { type ChatRequest, messages, modelRequest } from "@atrium/core/protocols/messages";
import { ModelStreamReader } from "@atrium/core/protocols/stream-reader";
import type { Route } from "@atrium/core/route";
import type { TenantContext } from "./middleware";
import { openModelStream } from "./model-stream";
import type { StreamedResult } from "./stream-response";
import { splitUsage, streamedCall } from "./streamed-call";

export const EVENT_STREAM_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
} as const;

export async function streamChat(
  context: TenantContext,
  route: Route,
  request: ChatRequest,
  bound: { maxTokens: number; promptReserved: number },
  identity: ChunkIdentity,
): Promise<StreamedResult> {
  const model = await openModelStream(
    route,
    modelRequest(request, bound.maxTokens, { stream: true }),
    context,
  );
  const reader = new ModelStreamReader(messages, bound.promptReserved);
  const chunks = new ChatChunks(identity, request.stream_options?.include_usage === true);
  const answer = {
    part: (bytes: Uint8Array) =>
      reader
        .push(bytes)
        .map((delta) => chunks.content(delta.deltaText))
        .join(""),
    end: () => {
      reader.end();
      return chunks.finish(reader.finishReason ?? "stop", reader.usage());
    },
    failure: chunks.error.bind(chunks),
    usage: () => splitUsage(reader.usage()),
  };
  return streamedCall(context, model.route, model, answer, {
    headers: { ...EVENT_STREAM_HEADERS, "x-atrium-route": model.route.kind },
    callMetric: "ChatCompletions",
  });
}
