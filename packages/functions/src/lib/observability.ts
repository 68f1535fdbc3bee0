import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { Tracer } from "@aws-lambda-powertools/tracer";

// Created once per container; POWERTOOLS_* environment variables override these defaults.
export const logger = new Logger({ serviceName: "atrium" });
// Their warnings go through the logger, so POWERTOOLS_LOG_LEVEL governs them like every other line.
/**
 * Operational metrics, per service and never per tenant: a tenant dimension makes one billed metric
 * per tenant (docs/metrics.md). The caller's tenant id rides in each document's metadata instead.
 */
export const metrics = new Metrics({ namespace: "Atrium", serviceName: "atrium", logger });
/** The few metrics with a `tenantId` dimension, those dashboards and alarms need per tenant (docs/metrics.md). */
export const tenantMetrics = new Metrics({ namespace: "Atrium", serviceName: "atrium", logger });
export const tracer = new Tracer({ serviceName: "atrium" });

/**
 * A call that reached the model, split as SageMaker splits its own: `ModelLatency` (the model's part)
 * and `OverheadLatency` (the rest, Atrium's), in milliseconds, into a document with the tenant's
 * dimension. Reports read their percentiles per tenant (docs/reports.md).
 */
export function addCallLatency(document: Metrics, totalMs: number, modelMs: number): void {
  const tenths = (ms: number) => Math.round(Math.max(0, ms) * 10) / 10;
  document.addMetric("ModelLatency", MetricUnit.Milliseconds, tenths(modelMs));
  document.addMetric("OverheadLatency", MetricUnit.Milliseconds, tenths(totalMs - modelMs));
}
