import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import middy, { type MiddlewareObj } from "@middy/core";
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from "aws-lambda";
import { type ApiContext, apiResponses, stoppedEarly } from "./api-responses";
import { logger } from "./observability";
import { STOP_EARLY_MS } from "./timeouts";

type Event = APIGatewayProxyEvent;
type Result = APIGatewayProxyResult;

/**
 * The middleware chain of admin handlers (authorised by IAM at the gateway). `idempotency`: only the
 * idempotent routes' handlers pass it (lib/idempotency.ts), so the others' bundles leave it out.
 */
export function adminApi(
  handler: (event: Event, context: ApiContext) => Promise<Result>,
  options: { idempotency?: MiddlewareObj<Event, Result, Error, ApiContext> } = {},
) {
  const chain = middy<Event, Result, Error, ApiContext>(handler, {
    timeoutEarlyInMillis: STOP_EARLY_MS,
    timeoutEarlyResponse: stoppedEarly(
      "The request did not complete in time; it may still have been applied. Check before retrying.",
    ),
  })
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(apiResponses());
  return options.idempotency ? chain.use(options.idempotency) : chain;
}
