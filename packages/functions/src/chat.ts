import { fromValidationIssues, invalidRequest, upstream } from "@atrium/core/errors";
import { promptTokenBound, tierOf } from "@atrium/core/limits";
import { resolveRoute } from "@atrium/core/route";
import { lengthBound } from "@atrium/core/token-bound";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { z } from "zod";
import { config } from "./lib/clients";
import { json, parseJsonBody } from "./lib/http";
import { invokeModel } from "./lib/invoke-model";
import { admitCall } from "./lib/limiter";
import { tenantApi } from "./lib/middleware";
import { metrics } from "./lib/observability";

const TextPart = z.object({ type: z.literal("text"), text: z.string() });
const Message = z.object({
  role: z.enum(["system", "developer", "user", "assistant", "tool"]),
  content: z.union([z.string(), z.array(TextPart).min(1)]),
  name: z.string().max(64).optional(),
});

/**
 * The OpenAI chat request fields Atrium forwards; other fields are ignored, as many clients send extras.
 * Length fields (max_tokens, max_completion_tokens, ...) are read by lengthBound, as on every route.
 */
export const ChatRequest = z.object({
  model: z.string().min(1).max(128),
  messages: z.array(Message).min(1).max(2048),
  temperature: z.number().min(0).max(2).optional(),
  top_p: z.number().min(0).max(1).optional(),
  stop: z.union([z.string(), z.array(z.string()).max(4)]).optional(),
  seed: z.number().int().optional(),
  n: z.literal(1, { error: "only n = 1 is supported" }).optional(),
  stream: z.boolean().optional(),
});

const ModelReply = z.object({
  choices: z
    .array(
      z.object({
        index: z.number().int().optional(),
        message: z.object({ role: z.string(), content: z.string().nullable() }),
        finish_reason: z.string().nullable(),
      }),
    )
    .min(1),
  usage: z.object({
    prompt_tokens: z.number().int().nonnegative(),
    completion_tokens: z.number().int().nonnegative(),
    total_tokens: z.number().int().nonnegative().optional(),
  }),
});

export const handler = tenantApi(async (event, context) => {
  const raw = parseJsonBody(event);
  const parsed = ChatRequest.safeParse(raw);
  if (!parsed.success) throw fromValidationIssues(parsed.error.issues);
  const request = parsed.data;
  if (request.stream) {
    throw invalidRequest(
      "unsupported_parameter",
      "stream: streaming is not available yet; send stream: false",
      "stream",
    );
  }
  const route = resolveRoute(context.tenant, request.model, config);
  const { maxTokens, field } = lengthBound(raw as Record<string, unknown>, tierOf(context.tenant, config));
  await admitCall(context, promptTokenBound(request.messages.map(messageText)) + maxTokens, field);
  const body = {
    messages: request.messages,
    // Always sent, so the model never generates more than was reserved.
    max_tokens: maxTokens,
    ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
    ...(request.top_p !== undefined ? { top_p: request.top_p } : {}),
    ...(request.stop !== undefined ? { stop: request.stop } : {}),
    ...(request.seed !== undefined ? { seed: request.seed } : {}),
  };
  const result = await invokeModel(
    route,
    { body: Buffer.from(JSON.stringify(body)), contentType: "application/json", accept: "application/json" },
    context,
  );

  const reply = ModelReply.safeParse(parseModelJson(result.body));
  if (!reply.success)
    throw upstream(502, "model_bad_response", `The model '${route.model}' returned an unreadable reply.`);
  const { prompt_tokens, completion_tokens } = reply.data.usage;
  context.usedTokens = prompt_tokens + completion_tokens;
  metrics.addMetric("ChatCompletions", MetricUnit.Count, 1);
  metrics.addMetric("PromptTokens", MetricUnit.Count, prompt_tokens);
  metrics.addMetric("CompletionTokens", MetricUnit.Count, completion_tokens);

  return json(
    200,
    {
      id: `chatcmpl-${event.requestContext.requestId}`,
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model: request.model,
      choices: reply.data.choices.map((choice, index) => ({
        index,
        message: { role: "assistant", content: choice.message.content },
        finish_reason: choice.finish_reason ?? "stop",
        logprobs: null,
      })),
      usage: { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens },
    },
    { "x-atrium-route": route.kind },
  );
});

function messageText(message: z.infer<typeof Message>): string {
  const text =
    typeof message.content === "string" ? message.content : message.content.map((p) => p.text).join("");
  return `${message.role}${message.name ?? ""}${text}`;
}

function parseModelJson(body: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(body).toString("utf8"));
  } catch {
    return undefined;
  }
}
