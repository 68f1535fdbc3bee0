/** The middleware that settles every admitted call: its usage after the handler, a refund on error. */

import { MetricUnit } from "@aws-lambda-powertools/metrics";
import type { MiddlewareObj } from "@middy/core";
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from "aws-lambda";
import type { Ticket } from "./admission";
import type { AllottedCall } from "./allotments";
import { fairShare } from "./endpoints";
import { limiter } from "./limiter";
import type { TenantContext } from "./middleware";
import { tenantMetrics } from "./observability";
import { isStreamed } from "./stream-response";
import { recordCall } from "./usage-ledger";

/** What a settled call used: `tokens` charged (never more than reserved), the rest refunded. */
export interface CallUsage {
  tokens: number;
  split?: { promptTokens: number; completionTokens: number } | undefined;
  outcome: "ok" | "error";
}

/**
 * Settles the call's reservation once, then records it in the usage ledger (docs/adr/0010). With
 * `later` (a function whose response streams), the writes wait until the client has its last byte
 * (docs/adr/0004, "Settle off the path"): only a call whose slot is scarce (Ticket.tight) releases it first.
 */
export async function settleTicket(context: TenantContext, usage: CallUsage, later?: Later): Promise<void> {
  const ticket = context.ticket;
  if (!ticket) return;
  context.ticket = undefined;
  const afterwards = (work: () => Promise<void>) => (later ? later(work) : work());
  if (ticket.allotted)
    return afterwards(settleAllotted(context, { ...ticket, allotted: ticket.allotted }, usage));
  if (!ticket.tight)
    return afterwards(async () => record(context, ticket, usage, await limiter.settle(ticket, usage.tokens)));
  const settled = await limiter.settle(ticket, usage.tokens);
  return afterwards(() => record(context, ticket, usage, settled));
}

/**
 * A stream's settle, in two steps. A call admitted from an allotment gets its slot and unused tokens
 * back here at once, in memory, before the stream's closing bytes: a client may start its next call
 * as soon as it reads them, and would otherwise meet this one still holding its slot. Everything that
 * writes runs in the returned function, once the last byte is sent.
 */
export function settleStream(context: TenantContext, usage: CallUsage): () => Promise<void> {
  const ticket = context.ticket;
  if (!ticket?.allotted) return () => settleTicket(context, usage);
  context.ticket = undefined;
  return settleAllotted(context, { ...ticket, allotted: ticket.allotted }, usage);
}

/** Settles an allotted call here (no write); returns its ledger record and upkeep, to run off the path. */
function settleAllotted(
  context: TenantContext,
  ticket: Ticket & { allotted: AllottedCall },
  usage: CallUsage,
) {
  const upkeep = limiter.settleAllotted(ticket, usage.tokens);
  return async () => {
    await record(context, ticket, usage, true);
    await upkeep();
  };
}

/** Work that runs once the response has been sent (see streamedProxyHandler). */
export type Later = (work: () => Promise<void>) => void;

/** The ledger's record of a settled call; nothing when its lease was gone (the tenant erased). */
async function record(context: TenantContext, ticket: Ticket, usage: CallUsage, settled: boolean) {
  await signalSlowCall(context);
  if (!settled || !context.call) return;
  const tokens = Math.min(ticket.reserved, Math.max(0, usage.tokens));
  const split =
    usage.split && usage.split.promptTokens + usage.split.completionTokens === tokens
      ? usage.split
      : undefined;
  await recordCall(ticket.tenantId, {
    ...context.call,
    outcome: usage.outcome,
    tokens,
    ...(split ? { split } : {}),
  });
}

/**
 * A fair-shared endpoint whose model took longer than its latency target is contended (ADR 0012);
 * its refusals for capacity are signalled where they happen, in `callModel`.
 */
async function signalSlowCall(context: TenantContext): Promise<void> {
  const endpoint = context.fairShared;
  const target = endpoint ? fairShare.latencyTargetMs(endpoint) : undefined;
  if (endpoint && target !== undefined && context.timing.modelMs > target)
    await fairShare.contended(endpoint);
}

/**
 * Settles after the handler (the reported usage; without a report the reservation, never less than
 * was possibly used) or refunds on error (usage 0, or what the model reported). A streamed answer
 * settles itself once its last byte is sent.
 */
export function settleCalls(): MiddlewareObj<
  APIGatewayProxyEvent,
  APIGatewayProxyResult,
  Error,
  TenantContext
> {
  return {
    after: async ({ context, response }) => {
      if (isStreamed(response)) return;
      const tokens = context.usedTokens ?? context.ticket?.reserved ?? 0;
      await settleTicket(context, { tokens, split: context.usedSplit, outcome: "ok" }, context.later);
    },
    onError: async ({ context }) => {
      // An admitted call that failed (and is refunded): an error a tenant's dashboard shows.
      if (context.ticket) tenantMetrics.addMetric("CallErrors", MetricUnit.Count, 1);
      const usage: CallUsage = {
        tokens: context.usedTokens ?? 0,
        split: context.usedSplit,
        outcome: "error",
      };
      await settleTicket(context, usage, context.later);
    },
  };
}
