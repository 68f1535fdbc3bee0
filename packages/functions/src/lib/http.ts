import { invalidRequest } from "@atrium/core/errors";
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from "aws-lambda";

export function json(
  statusCode: number,
  body: unknown,
  headers: Record<string, string> = {},
): APIGatewayProxyResult {
  return {
    statusCode,
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  };
}

/** The raw request body as bytes, whichever way API Gateway encoded it. */
export function bodyBytes(event: APIGatewayProxyEvent): Buffer {
  if (event.body == null) return Buffer.alloc(0);
  return Buffer.from(event.body, event.isBase64Encoded ? "base64" : "utf8");
}

export function parseJsonBody(event: APIGatewayProxyEvent): unknown {
  // A text body is parsed as it is: no round trip through bytes.
  const text = event.isBase64Encoded ? bodyBytes(event).toString("utf8") : (event.body ?? "");
  if (text.trim() === "")
    throw invalidRequest("missing_body", "The request body is empty; send a JSON object.");
  try {
    return JSON.parse(text);
  } catch {
    throw invalidRequest("invalid_json", "The request body is not valid JSON.");
  }
}

/** Case-insensitive header lookup (API Gateway keeps the case the client sent). */
export function header(event: APIGatewayProxyEvent, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(event.headers ?? {})) {
    if (key.toLowerCase() === wanted && value !== undefined) return value;
  }
  return undefined;
}
