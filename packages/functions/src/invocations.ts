import { ModelName } from "@atrium/core/config";
import { tierOf } from "@atrium/core/limits";
import { modelNotFound } from "@atrium/core/route";
import { boundInvocation, reportedUsage } from "@atrium/core/token-bound";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { config } from "./lib/clients";
import { routeCall } from "./lib/endpoint-routing";
import { bodyBytes, header } from "./lib/http";
import { invokeModel } from "./lib/invoke-model";
import { admitCall } from "./lib/limiter";
import { tenantApi } from "./lib/middleware";
import { metrics } from "./lib/observability";
import { streamedProxyHandler } from "./lib/stream-response";
import { tenantIdempotency } from "./lib/tenant-idempotency";

/** Replies of these types are returned as text; any other as base64 (binary). */
const TEXT_TYPES = /^(text\/|application\/([\w.+-]*\+)?(json|xml|x-ndjson|jsonlines|x-www-form-urlencoded))/i;

/**
 * Raw passthrough: the tenant's body, Content-Type and Accept go to the model; a JSON body is bounded
 * first (the output bound written in when it sets none), any other reserves the tier's rawCallTokens.
 * Its integration streams (the route table's `stream`), though the answer is one body: the settle and
 * ledger writes then run after the client has its last byte, as the chat route's do.
 */
export const handler = streamedProxyHandler(
  tenantApi(
    async (event, context) => {
      const model = event.pathParameters?.model ?? "";
      // A name no model can have (`__proto__`, `a b`) names no model: the same 404 as any unknown one.
      if (!ModelName.safeParse(model).success) throw modelNotFound(model);
      const route = await routeCall(context, model);
      const contentType = header(event, "content-type") ?? "application/json";
      const call = boundInvocation(bodyBytes(event), contentType, tierOf(context.tenant, config));
      await admitCall(context, route, call.reserved, call.field);
      const accept = header(event, "accept");
      const result = await invokeModel(
        route,
        { body: call.body, contentType, ...(accept ? { accept } : {}) },
        context,
      );
      metrics.addMetric("Invocations", MetricUnit.Count, 1);
      // Unreported usage is charged at the reservation (the settle middleware's fallback).
      const used = reportedUsage(result.body, result.contentType, call);
      if (used !== undefined) context.usedTokens = used;

      const isText = TEXT_TYPES.test(result.contentType);
      return {
        statusCode: 200,
        headers: { "content-type": result.contentType, "x-atrium-route": result.route.kind },
        body: Buffer.from(result.body).toString(isText ? "utf8" : "base64"),
        isBase64Encoded: !isText,
      };
    },
    { idempotency: tenantIdempotency() },
  ),
);
