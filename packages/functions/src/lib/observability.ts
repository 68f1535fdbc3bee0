import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics } from "@aws-lambda-powertools/metrics";
import { Tracer } from "@aws-lambda-powertools/tracer";

// Created once per container; POWERTOOLS_* environment variables override these defaults.
export const logger = new Logger({ serviceName: "atrium" });
// Its warnings go through the logger, so POWERTOOLS_LOG_LEVEL governs them like every other line.
export const metrics = new Metrics({ namespace: "Atrium", serviceName: "atrium", logger });
export const tracer = new Tracer({ serviceName: "atrium" });
