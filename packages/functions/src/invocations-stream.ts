import { ModelName } from "@atrium/core/config";
import { tierOf } from "@atrium/core/limits";
import { modelNotFound } from "@atrium/core/route";
import { boundInvocation } from "@atrium/core/token-bound";
import { config } from "./lib/clients";
import { routeCall } from "./lib/endpoint-routing";
import { bodyBytes, header } from "./lib/http";
import { admitCall } from "./lib/limiter";
import { tenantApi } from "./lib/middleware";
import { openModelStream } from "./lib/model-stream";
import { rawStreamAnswer } from "./lib/raw-stream-answer";
import { streamedProxyHandler } from "./lib/stream-response";
import { streamedCall } from "./lib/streamed-call";

/**
 * Raw streaming passthrough (InvokeEndpointWithResponseStream): the tenant's body, Content-Type and
 * Accept go to the model, bounded as raw invocations are, and the model's bytes come back unchanged
 * as they are produced. Charged what the model reports or produced, settled after the last byte.
 */
export const handler = streamedProxyHandler(
  tenantApi(async (event, context) => {
    const model = event.pathParameters?.model ?? "";
    // A name no model can have (`__proto__`, `a b`) names no model: the same 404 as any unknown one.
    if (!ModelName.safeParse(model).success) throw modelNotFound(model);
    const route = await routeCall(context, model);
    const contentType = header(event, "content-type") ?? "application/json";
    const call = boundInvocation(bodyBytes(event), contentType, tierOf(context.tenant, config));
    await admitCall(context, route, call.reserved, call.field, { streamed: true });
    const accept = header(event, "accept");
    const stream = await openModelStream(
      route,
      { body: call.body, contentType, ...(accept ? { accept } : {}) },
      context,
    );
    return streamedCall(context, stream.route, stream, rawStreamAnswer(call, stream.contentType), {
      headers: { "content-type": stream.contentType, "x-atrium-route": stream.route.kind },
      callMetric: "Invocations",
    });
  }),
);
