/**
 * What each stream reports when it ends, per tenant and model: time to first token (the model's and
 * Atrium's own part), output tokens per second, and how it ended; its latency per tenant. One EMF
 * document per stream, apart from the call's other metrics, which were published when the response
 * head left.
 */
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { addCallLatency, logger } from "./observability";

/** completed: every byte sent; failed: the model or its stream broke; timed_out: stopped at the function's deadline; client_gone: the response stream closed early. */
export type StreamOutcome = "completed" | "failed" | "timed_out" | "client_gone";

export interface StreamReport {
  tenantId: string;
  model: string;
  outcome: StreamOutcome;
  /** From the request to SageMaker until the model's first bytes. */
  modelTtftMs: number;
  /** Atrium's part of the time to first token: the client's wait less the model's. */
  atriumTtftMs: number;
  /** What the call was charged for, as the buffered calls of its route report it. */
  usage: { promptTokens: number; completionTokens: number } | undefined;
  /** The route's count metric (ChatCompletions, Invocations). */
  callMetric: string;
  /** From the model's first bytes to its last. */
  streamingMs: number;
  /** From the call's start to the last byte sent, and the model's part of it (its first bytes, then its stream). */
  latency: { totalMs: number; modelMs: number };
}

const OUTCOME_METRIC: Record<StreamOutcome, string> = {
  completed: "StreamsCompleted",
  failed: "StreamsFailed",
  timed_out: "StreamsTimedOut",
  client_gone: "StreamsClientGone",
};

/**
 * One instance per kind of document, made once per container: each report adds its dimensions and
 * metrics and publishes them in the same tick (which clears them), so reports never mix.
 */
const documents = {
  service: new Metrics({ namespace: "Atrium", serviceName: "atrium", logger }),
  usage: new Metrics({ namespace: "Atrium", serviceName: "atrium", logger }),
  stream: new Metrics({ namespace: "Atrium", serviceName: "atrium", logger }),
};

export function reportStream(report: StreamReport): void {
  // The call's count and usage under the same dimensions as a buffered call's, so they add up alike.
  const service = documents.service;
  service.addMetadata("tenantId", report.tenantId);
  service.addMetric(report.callMetric, MetricUnit.Count, 1);
  service.publishStoredMetrics();
  const failed = report.outcome === "failed" || report.outcome === "timed_out";
  const usage = documents.usage;
  usage.addDimension("tenantId", report.tenantId);
  if (failed) usage.addMetric("CallErrors", MetricUnit.Count, 1);
  if (report.usage) {
    usage.addMetric("PromptTokens", MetricUnit.Count, report.usage.promptTokens);
    usage.addMetric("CompletionTokens", MetricUnit.Count, report.usage.completionTokens);
  }
  addCallLatency(usage, report.latency.totalMs, report.latency.modelMs);
  usage.publishStoredMetrics();

  const completionTokens = report.usage?.completionTokens ?? 0;
  const metrics = documents.stream;
  metrics.addDimensions({ tenantId: report.tenantId, model: report.model });
  metrics.addMetric("TimeToFirstToken", MetricUnit.Milliseconds, report.modelTtftMs + report.atriumTtftMs);
  metrics.addMetric("ModelTimeToFirstToken", MetricUnit.Milliseconds, report.modelTtftMs);
  metrics.addMetric("AtriumTimeToFirstToken", MetricUnit.Milliseconds, report.atriumTtftMs);
  if (report.streamingMs > 0 && completionTokens > 0) {
    const perSecond = completionTokens / (report.streamingMs / 1000);
    metrics.addMetric("TokensPerSecond", MetricUnit.CountPerSecond, Number(perSecond.toFixed(2)));
  }
  metrics.addMetric(OUTCOME_METRIC[report.outcome], MetricUnit.Count, 1);
  metrics.publishStoredMetrics();
  // Named here: the call's log keys were reset when its handler returned, or are another call's by now.
  logger.info("stream ended", {
    tenantId: report.tenantId,
    model: report.model,
    outcome: report.outcome,
    ttftMs: Number((report.modelTtftMs + report.atriumTtftMs).toFixed(1)),
    atriumTtftMs: Number(report.atriumTtftMs.toFixed(1)),
    completionTokens,
    streamingMs: Math.round(report.streamingMs),
  });
}
