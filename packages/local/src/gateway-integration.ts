/**
 * A buffered Lambda proxy integration as API Gateway runs it: the function's whole proxy result,
 * awaited within the integration timeout, then sent with its content-length. STREAM routes run
 * through gateway-stream.ts instead.
 */
import type { ServerResponse } from "node:http";
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from "aws-lambda";
import { GatewayError, type LambdaHandler, withTimeout } from "./gateway-authorizer";
import { inInvocation } from "./lambda-invoke-store";

/** One call of a route's function. A GatewayError it throws is the gateway response to send. */
export interface IntegrationCall {
  /** The route's SST handler string. */
  entry: string;
  loadHandler: (handler: string) => Promise<LambdaHandler>;
  event: APIGatewayProxyEvent;
  context: Context;
  requestId: string;
}

/**
 * Calls the function and sends its proxy result; returns the status sent. Throws INTEGRATION_TIMEOUT
 * past `timeoutMs`, DEFAULT_5XX for a malformed result, and whatever the function throws.
 */
export async function callBufferedIntegration(
  res: ServerResponse,
  call: IntegrationCall & { timeoutMs: number },
): Promise<number> {
  const handler = await call.loadHandler(call.entry);
  const result: unknown = await withTimeout(
    inInvocation(call.context, () => handler(call.event, call.context)),
    call.timeoutMs,
  );
  if (!isProxyResult(result)) {
    console.error(`lambda ${call.entry} returned a malformed proxy response`);
    throw new GatewayError("DEFAULT_5XX");
  }
  sendProxyResult(res, result, call.requestId);
  return result.statusCode;
}

function sendProxyResult(res: ServerResponse, result: APIGatewayProxyResult, requestId: string): void {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(result.headers ?? {}))
    headers[name.toLowerCase()] = String(value);
  for (const [name, values] of Object.entries(result.multiValueHeaders ?? {})) {
    headers[name.toLowerCase()] = values.map(String);
  }
  const body = Buffer.from(result.body ?? "", result.isBase64Encoded ? "base64" : "utf8");
  headers["content-length"] = String(body.length);
  headers["x-amzn-requestid"] = requestId;
  headers["content-type"] ??= "application/json";
  res.writeHead(result.statusCode, headers);
  res.end(body);
}

function isProxyResult(value: unknown): value is APIGatewayProxyResult {
  const v = value as APIGatewayProxyResult | undefined;
  return (
    typeof v?.statusCode === "number" &&
    (v.body === undefined || v.body === null || typeof v.body === "string")
  );
}
