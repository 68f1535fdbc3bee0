import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from "aws-lambda";

/**
 * Serves a Lambda-proxy handler behind an integration in STREAM transfer mode, which expects the
 * streaming proxy format (metadata JSON, eight NUL bytes, then the body) rather than a result
 * object. `awslambda` is the Lambda runtime's global; its HttpResponseStream writes the prelude.
 * Today the whole body is written at once; a handler that yields tokens can later write as it goes.
 */
export function streamedProxyHandler<C extends Context>(
  handler: (event: APIGatewayProxyEvent, context: C) => Promise<APIGatewayProxyResult>,
) {
  return awslambda.streamifyResponse(async (event: APIGatewayProxyEvent, responseStream, context) => {
    // The handler's middlewares add their fields (timing, tenant) to the runtime's context.
    const result = await handler(event, context as C);
    const stream = awslambda.HttpResponseStream.from(responseStream, {
      statusCode: result.statusCode,
      headers: stringValues(result.headers),
      ...(result.multiValueHeaders ? { multiValueHeaders: result.multiValueHeaders } : {}),
    });
    await new Promise<void>((resolve, reject) => {
      stream.on("error", reject);
      stream.end(Buffer.from(result.body, result.isBase64Encoded ? "base64" : "utf8"), resolve);
    });
  });
}

function stringValues(headers: APIGatewayProxyResult["headers"]): Record<string, string> {
  return Object.fromEntries(Object.entries(headers ?? {}).map(([name, value]) => [name, String(value)]));
}
