import { ModelName } from "@atrium/core/config";
import { invalidRequest } from "@atrium/core/errors";
import { resolveRoute } from "@atrium/core/route";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { config } from "./lib/clients";
import { bodyBytes, header } from "./lib/http";
import { invokeModel } from "./lib/invoke-model";
import { tenantApi } from "./lib/middleware";
import { metrics } from "./lib/observability";

const TEXT_TYPES = /^(text\/|application\/([\w.+-]*\+)?(json|xml|x-ndjson|jsonlines|x-www-form-urlencoded))/i;

/** Raw passthrough: the tenant's bytes, Content-Type and Accept go to the model as they came. */
export const handler = tenantApi(async (event, context) => {
  const model = event.pathParameters?.model ?? "";
  if (!ModelName.safeParse(model).success) {
    throw invalidRequest("invalid_model", `model: '${model}' is not a valid model name`, "model");
  }
  const route = resolveRoute(context.tenant, model, config);
  const accept = header(event, "accept");
  const result = await invokeModel(
    route,
    {
      body: bodyBytes(event),
      contentType: header(event, "content-type") ?? "application/json",
      ...(accept ? { accept } : {}),
    },
    context,
  );
  metrics.addMetric("Invocations", MetricUnit.Count, 1);

  const isText = TEXT_TYPES.test(result.contentType);
  return {
    statusCode: 200,
    headers: { "content-type": result.contentType, "x-atrium-route": route.kind },
    body: Buffer.from(result.body).toString(isText ? "utf8" : "base64"),
    isBase64Encoded: !isText,
  };
});
