import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics } from "@aws-lambda-powertools/metrics";
import { Tracer } from "@aws-lambda-powertools/tracer";

// Created once per container; POWERTOOLS_* environment variables override these defaults.
export const logger = new Logger({ serviceName: "atrium" });
export const metrics = new Metrics({ namespace: "Atrium", serviceName: "atrium" });
export const tracer = new Tracer({ serviceName: "atrium" });
