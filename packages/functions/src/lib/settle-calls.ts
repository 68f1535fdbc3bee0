/** The middleware that settles every admitted call: its usage after the handler, a refund on error. */
import type { MiddlewareObj } from "@middy/core";
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from "aws-lambda";
import { limiter } from "./limiter";
import type { TenantContext } from "./middleware";
import { isStreamed } from "./stream-response";

/** Settles the call's reservation once: `tokens` are charged (never more than reserved), the rest refunded. */
export async function settleTicket(context: TenantContext, tokens: number): Promise<void> {
  const ticket = context.ticket;
  if (!ticket) return;
  context.ticket = undefined;
  await limiter.settle(ticket, tokens);
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
      await settleTicket(context, context.usedTokens ?? context.ticket?.reserved ?? 0);
    },
    onError: ({ context }) => settleTicket(context, context.usedTokens ?? 0),
  };
}
