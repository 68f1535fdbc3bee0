import { ModelName, tierSpec } from "@atrium/core/config";
import { maxTokensFor, promptTokenBound } from "@atrium/core/limits";
import { modelNotFound, resolveRoute } from "@atrium/core/route";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { config } from "./lib/clients";
import { bodyBytes, header } from "./lib/http";
import { invokeModel } from "./lib/invoke-model";
import { admitCall } from "./lib/limiter";
import { tenantApi } from "./lib/middleware";
import { metrics } from "./lib/observability";

const TEXT_TYPES = /^(text\/|application\/([\w.+-]*\+)?(json|xml|x-ndjson|jsonlines|x-www-form-urlencoded))/i;

/** Raw passthrough: the tenant's bytes, Content-Type and Accept go to the model as they came. */
export const handler = tenantApi(async (event, context) => {
  const model = event.pathParameters?.model ?? "";
  // A name no model can have (`__proto__`, `a b`) names no model: the same 404 as any unknown one.
  if (!ModelName.safeParse(model).success) throw modelNotFound(model);
  const route = resolveRoute(context.tenant, model, config);
  const body = bodyBytes(event);
  const contentType = header(event, "content-type") ?? "application/json";
  // Text payloads reserve a bound of their bytes plus the max_tokens they ask for (or the tier's default);
  // binary payloads (images, audio) are not tokenized: requests and concurrency limits still apply.
  const tier = tierSpec(config, context.tenant.tier);
  const reserve = TEXT_TYPES.test(contentType)
    ? promptTokenBound([body.toString("latin1")]) + maxTokensFor(requestedMaxTokens(body), tier)
    : 0;
  await admitCall(context, reserve);
  const accept = header(event, "accept");
  const result = await invokeModel(
    route,
    {
      body,
      contentType,
      ...(accept ? { accept } : {}),
    },
    context,
  );
  metrics.addMetric("Invocations", MetricUnit.Count, 1);
  const used = reportedTokens(result.body);
  if (used !== undefined) context.usedTokens = used;

  const isText = TEXT_TYPES.test(result.contentType);
  return {
    statusCode: 200,
    headers: { "content-type": result.contentType, "x-atrium-route": route.kind },
    body: Buffer.from(result.body).toString(isText ? "utf8" : "base64"),
    isBase64Encoded: !isText,
  };
});

function parseJson(bytes: Uint8Array): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(Buffer.from(bytes).toString("utf8"));
    return value && typeof value === "object" ? value : undefined;
  } catch {
    return undefined;
  }
}

/** `max_tokens` of a JSON payload (Messages API, or TGI's `parameters.max_new_tokens`), if it sets one. */
function requestedMaxTokens(body: Uint8Array): number | undefined {
  const json = parseJson(body);
  const parameters = json?.parameters as Record<string, unknown> | undefined;
  const value = json?.max_tokens ?? parameters?.max_new_tokens;
  return typeof value === "number" && Number.isInteger(value) && value > 0 ? value : undefined;
}

/** Tokens a model reported in an OpenAI-style `usage`; otherwise the reservation is charged. */
function reportedTokens(body: Uint8Array): number | undefined {
  const usage = parseJson(body)?.usage as Record<string, unknown> | undefined;
  if (typeof usage?.total_tokens === "number") return usage.total_tokens;
  if (typeof usage?.prompt_tokens === "number" && typeof usage?.completion_tokens === "number") {
    return usage.prompt_tokens + usage.completion_tokens;
  }
  return undefined;
}
