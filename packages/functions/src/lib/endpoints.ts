/**
 * This instance's view of the endpoint table and the two things that read it: fair share (ADR 0012)
 * and the circuit breaker (ADR 0013), wired into the retry seam. Endpoints' shared state is the
 * platform's, not a tenant's: the function's own client reads and writes it.
 */
import { CircuitBreakerStore } from "@atrium/core/circuit-breaker-store";
import { DynamoClient } from "@atrium/core/dynamodb/client";
import { EndpointStateStore } from "@atrium/core/endpoint-state-store";
import { EndpointTable } from "@atrium/core/tables";
import { whenCallAllows } from "./call-upkeep";
import { createCircuitBreaker } from "./circuit-breaker";
import { config, requireEnv } from "./clients";
import { createEndpointView, FIRST_VIEW_WAIT_MS } from "./endpoint-view";
import { createFairShare } from "./fair-share";
import { onCapacityRefusal, onEndpointHealth } from "./model-retries";
import { endpointStateTimeouts } from "./timeouts";

const table = requireEnv(EndpointTable.env);
const client = new DynamoClient(endpointStateTimeouts(config.dynamodbRequestTimeoutMs));
const store = new EndpointStateStore(client, table);
// A stale view is read again once the call that found it has its model's answer (call-upkeep.ts).
const endpoints = createEndpointView(store, FIRST_VIEW_WAIT_MS, whenCallAllows);

export const fairShare = createFairShare({ store, endpoints, config });
export const breaker = createCircuitBreaker({
  endpoints,
  store: new CircuitBreakerStore(client, table),
  settings: config.circuitBreaker,
});

// An endpoint that refused a call for capacity is contended.
onCapacityRefusal((endpointName) => fairShare.contended(endpointName));
onEndpointHealth({
  async admit(context, route) {
    const passage = await breaker.admit(route.endpointName);
    if (passage.allowed && passage.probe !== undefined && context.routing) {
      context.routing.probe = { endpointName: route.endpointName, claim: passage.probe };
    }
    return passage.allowed;
  },
  outcome(context, route, failed) {
    const probe = context.routing?.probe;
    const claim = probe?.endpointName === route.endpointName ? probe.claim : undefined;
    return breaker.outcome(route.endpointName, failed, claim);
  },
});
