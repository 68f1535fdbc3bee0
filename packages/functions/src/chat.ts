import { fromValidationIssues, invalidRequest } from "@atrium/core/errors";
import { promptTokenBound, tierOf } from "@atrium/core/limits";
import {
  ChatRequest,
  chatCompletion,
  modelRequest,
  parseReply,
  promptTexts,
} from "@atrium/core/protocols/messages";
import { lengthBound } from "@atrium/core/token-bound";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { config } from "./lib/clients";
import { routeCall } from "./lib/endpoint-routing";
import { json, parseJsonBody } from "./lib/http";
import { invokeModel } from "./lib/invoke-model";
import { admitCall } from "./lib/limiter";
import { tenantApi } from "./lib/middleware";
import { metrics, tenantMetrics } from "./lib/observability";
import { streamChat } from "./lib/stream-chat";
import { streamedProxyHandler } from "./lib/stream-response";
import { tenantIdempotency } from "./lib/tenant-idempotency";

/**
 * The OpenAI chat route: the request and reply mapping is the Messages protocol's (core/protocols/messages).
 * Its integration streams (the route table's `stream`): `stream: true` is answered as server-sent
 * events as the model produces them, any other call as one JSON body.
 */
export const handler = streamedProxyHandler(
  tenantApi(
    async (event, context) => {
      const raw = parseJsonBody(event);
      const parsed = ChatRequest.safeParse(raw);
      if (!parsed.success) throw fromValidationIssues(parsed.error.issues);
      const request = parsed.data;
      if (request.stream_options && !request.stream) {
        throw invalidRequest(
          "invalid_request",
          "stream_options: only allowed when stream is true",
          "stream_options",
        );
      }
      const route = await routeCall(context, request.model);
      const { maxTokens, field } = lengthBound(
        raw as Record<string, unknown>,
        tierOf(context.tenant, config),
      );
      const promptReserved = promptTokenBound(promptTexts(request));
      await admitCall(context, route, promptReserved + maxTokens, field, {
        streamed: request.stream === true,
      });
      const identity = {
        id: `chatcmpl-${event.requestContext.requestId}`,
        model: request.model,
        created: Math.floor(Date.now() / 1000),
      };
      if (request.stream) return streamChat(context, route, request, { maxTokens, promptReserved }, identity);

      const result = await invokeModel(route, modelRequest(request, maxTokens), context);
      const reply = parseReply(result.body, result.route.model);
      const { promptTokens, completionTokens } = reply.usage;
      context.usedTokens = promptTokens + completionTokens;
      context.usedSplit = reply.usage;
      metrics.addMetric("ChatCompletions", MetricUnit.Count, 1);
      tenantMetrics.addMetric("PromptTokens", MetricUnit.Count, promptTokens);
      tenantMetrics.addMetric("CompletionTokens", MetricUnit.Count, completionTokens);
      return json(200, chatCompletion(reply, identity), { "x-atrium-route": result.route.kind });
    },
    { idempotency: tenantIdempotency() },
  ),
);
