/**
 * The limiter as this Lambda wires it: one limiter store per tenant (on the tenant's scoped
 * DynamoDB client), one admission for the container, and the entry point handlers call.
 */
import { LimiterStore } from "@atrium/core/limiter-store";
import type { Route } from "@atrium/core/route";
import { LimiterTable } from "@atrium/core/tables";
import { createAdmission, LEASE_MICROS } from "./admission";
import { whenCallAllows } from "./call-upkeep";
import { config, requireEnv } from "./clients";
import { fairShare } from "./endpoints";
import type { TenantContext } from "./middleware";
import { RefusalError } from "./rate-limit-refusal";
import { tenantClients } from "./tenant-clients";
import { recordRefusal } from "./usage-ledger";

const limiterTable = requireEnv(LimiterTable.env);
const stores = new Map<string, LimiterStore>();

/**
 * One store per tenant in this container: its DynamoDB client runs as the tenant (IAM leading keys
 * limit it to the tenant's own limiter items), and its prediction cache is the tenant's.
 */
export function limiterStoreFor(tenantId: string): LimiterStore {
  const dynamo = tenantClients(tenantId).dynamo;
  let store = stores.get(tenantId);
  if (!store || store.client !== dynamo) {
    store = new LimiterStore(dynamo, limiterTable);
    stores.set(tenantId, store);
  }
  return store;
}

// A renewal found due at an admission goes out once the call's model has its request (call-upkeep.ts).
export const limiter = createAdmission({ storeFor: limiterStoreFor, config, startRenewal: whenCallAllows });

/**
 * Reserves `tokens` for the caller's call (`field`: the length field that set its bound, named in a
 * refusal); the `settleCalls` middleware settles or refunds it, or a stream once it has ended. A
 * streamed call's lease lasts as long as its function may run, so its slot is held to the end.
 */
export async function admitCall(
  context: TenantContext,
  route: Route,
  tokens: number,
  field: string | null = null,
  options: { streamed?: boolean } = {},
): Promise<void> {
  const remainingMs = context.getRemainingTimeInMillis?.() ?? 0;
  const leaseMicros = options.streamed ? Math.max(LEASE_MICROS, (remainingMs + 60_000) * 1000) : LEASE_MICROS;
  context.call = { model: route.model, route: route.kind };
  const claim = await fairShare.claimFor(route, context.tenant);
  let admitted: Awaited<ReturnType<typeof limiter.admit>>;
  try {
    admitted = await limiter.admit(context.tenant, tokens, field, leaseMicros, claim);
  } catch (err) {
    if (err instanceof RefusalError) {
      // A tenant wanting more than its share: the endpoint's contention persists.
      if (err.reason === "endpoint_busy") await fairShare.contended(route.endpointName);
      await recordRefusal(context.tenant.id, route.model, err.reason);
    }
    throw err;
  }
  if (claim) context.fairShared = claim.name;
  const { ticket, headers } = admitted;
  context.ticket = ticket;
  Object.assign(context.responseHeaders, headers);
}
