/** The middleware that settles every admitted call: its usage after the handler, a refund on error. */
import type { MiddlewareObj } from "@middy/core";
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from "aws-lambda";
import type { Ticket } from "./admission";
import { limiter } from "./limiter";
import type { TenantContext } from "./middleware";

/** Settles after the handler (the reported usage) or refunds on error (usage 0, or what the model reported). */
export function settleCalls(): MiddlewareObj<
  APIGatewayProxyEvent,
  APIGatewayProxyResult,
  Error,
  TenantContext
> {
  const settle = async (context: TenantContext, fallback: (ticket: Ticket) => number) => {
    const ticket = context.ticket;
    if (!ticket) return;
    context.ticket = undefined;
    await limiter.settle(ticket, context.usedTokens ?? fallback(ticket));
  };
  return {
    // Without a usage report the reservation is what is charged: never less than was possibly used.
    after: (request) => settle(request.context, (ticket) => ticket.reserved),
    onError: (request) => settle(request.context, () => 0),
  };
}
