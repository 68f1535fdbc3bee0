/** The middleware that settles every admitted call: its usage after the handler, a refund on error. */

import { AtriumError } from "@atrium/core/errors";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import type { MiddlewareObj } from "@middy/core";
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from "aws-lambda";
import { fairShare, limiter } from "./limiter";
import type { TenantContext } from "./middleware";
import { tenantMetrics } from "./observability";
import { isStreamed } from "./stream-response";
import { recordCall } from "./usage-ledger";

/** What a settled call used: `tokens` charged (never more than reserved), the rest refunded. */
export interface CallUsage {
  tokens: number;
  split?: { promptTokens: number; completionTokens: number } | undefined;
  outcome: "ok" | "error";
  /** The endpoint refused the call for capacity (a sign of contention, docs/adr/0012). */
  overloaded?: boolean;
}

/** Settles the call's reservation once, then records it in the usage ledger (docs/adr/0010). */
export async function settleTicket(context: TenantContext, usage: CallUsage): Promise<void> {
  const ticket = context.ticket;
  if (!ticket) return;
  context.ticket = undefined;
  const settled = await limiter.settle(ticket, usage.tokens);
  await signalContention(context, usage);
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

/** Marks a fair-shared endpoint contended when the call shows demand beyond its capacity (ADR 0012). */
async function signalContention(context: TenantContext, usage: CallUsage): Promise<void> {
  const endpoint = context.fairShared;
  if (!endpoint) return;
  const target = fairShare.latencyTargetMs(endpoint);
  const slow = target !== undefined && context.timing.modelMs > target;
  if (usage.overloaded || slow) await fairShare.contended(endpoint);
}

/** The model errors that mean the endpoint had no room for the call. */
const OVERLOADED_CODES = new Set(["model_overloaded"]);

export function isOverloaded(err: unknown): boolean {
  return err instanceof AtriumError && OVERLOADED_CODES.has(err.code);
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
      await settleTicket(context, { tokens, split: context.usedSplit, outcome: "ok" });
    },
    onError: async ({ context, error }) => {
      // An admitted call that failed (and is refunded): an error a tenant's dashboard shows.
      if (context.ticket) tenantMetrics.addMetric("CallErrors", MetricUnit.Count, 1);
      await settleTicket(context, {
        tokens: context.usedTokens ?? 0,
        split: context.usedSplit,
        outcome: "error",
        overloaded: isOverloaded(error),
      });
    },
  };
}
