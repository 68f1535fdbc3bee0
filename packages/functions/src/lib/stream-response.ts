import type { Writable } from "node:stream";
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from "aws-lambda";
import { startUpkeep, upkeepDone } from "./call-upkeep";

/**
 * A result whose body is written as it is produced: `stream` writes it to the client, ends it, and
 * then finishes the call (the settle), so the client's last byte never waits on Atrium's bookkeeping.
 */
export interface StreamedResult extends APIGatewayProxyResult {
  body: "";
  stream(out: Writable): Promise<void>;
}

export function isStreamed(result: APIGatewayProxyResult | null | undefined): result is StreamedResult {
  return typeof (result as Partial<StreamedResult> | null | undefined)?.stream === "function";
}

/**
 * Serves a Lambda-proxy handler behind an integration in STREAM transfer mode, which expects the
 * streaming proxy format (metadata JSON, eight NUL bytes, then the body) rather than a result
 * object. `awslambda` is the Lambda runtime's global; its HttpResponseStream writes the prelude.
 * A buffered result is written at once; a StreamedResult writes its body as it goes.
 */
export function streamedProxyHandler<C extends Context>(
  handler: (event: APIGatewayProxyEvent, context: C) => Promise<APIGatewayProxyResult>,
) {
  return awslambda.streamifyResponse(async (event: APIGatewayProxyEvent, responseStream, context) => {
    // Work the handler leaves for after the response (settle and ledger writes), run once it is sent.
    const afterwards: (() => Promise<void>)[] = [];
    try {
      await respond(
        event,
        responseStream,
        Object.assign(context, { later: (work: () => Promise<void>) => afterwards.push(work) }),
      );
    } finally {
      // Upkeep the call found due (call-upkeep.ts) goes out now, beside the settle's writes, if the
      // model has not started it.
      startUpkeep();
      for (const work of afterwards) {
        // Never thrown: the response is sent; each piece logs and counts its own failures.
        await work().catch((err) => console.error("work after the response failed", (err as Error).name));
      }
      // Done before the invocation returns, so no request is left in flight while Lambda freezes.
      await upkeepDone();
    }
  });

  async function respond(event: APIGatewayProxyEvent, responseStream: Writable, context: Context) {
    // The handler's middlewares add their fields (timing, tenant) to the runtime's context.
    const result = await handler(event, context as C);
    const stream = awslambda.HttpResponseStream.from(responseStream, {
      statusCode: result.statusCode,
      headers: stringValues(result.headers),
      ...(result.multiValueHeaders ? { multiValueHeaders: result.multiValueHeaders } : {}),
    });
    if (isStreamed(result)) return result.stream(stream);
    await new Promise<void>((resolve, reject) => {
      stream.on("error", reject);
      stream.end(Buffer.from(result.body, result.isBase64Encoded ? "base64" : "utf8"), resolve);
    });
  }
}

function stringValues(headers: APIGatewayProxyResult["headers"]): Record<string, string> {
  return Object.fromEntries(Object.entries(headers ?? {}).map(([name, value]) => [name, String(value)]));
}
