import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics } from "@aws-lambda-powertools/metrics";
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
