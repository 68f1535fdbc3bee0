// @vitest-environment node
/**
 * The streamed chat entry under LocalLambdaStreamingRuntime, the local stand-in for the Lambda
 * Node.js runtime's `awslambda` global (streamifyResponse, HttpResponseStream.from), which exists
 * only inside Lambda. It writes what API Gateway's streaming proxy format documents: the metadata
 * JSON, eight NUL bytes, then the payload; the tests read the bytes back the way API Gateway would.
 */
import { readFileSync } from "node:fs";
import { Writable } from "node:stream";
import {
  installLocalLambdaStreamingRuntime,
  isStreamingHandler,
} from "@atrium/local/lambda-streaming-runtime";
import type { APIGatewayProxyEvent, Context } from "aws-lambda";
import { beforeAll, describe, expect, it } from "vitest";

/** The documented end of the metadata prelude, independent of the runtime stand-in's own constant. */
const DELIMITER = Buffer.alloc(8);

/** A response stream that keeps every byte written to it. */
function captured() {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      chunks.push(Buffer.from(chunk));
      done();
    },
  });
  return { stream, bytes: () => Buffer.concat(chunks) };
}

/** Splits a streamed response as API Gateway does: metadata before the first eight NUL bytes, payload after. */
function parse(bytes: Buffer) {
  const at = bytes.indexOf(DELIMITER);
  expect(at).toBeGreaterThan(0);
  return { metadata: JSON.parse(bytes.subarray(0, at).toString("utf8")), payload: bytes.subarray(at + 8) };
}

const context = {
  functionName: "chat",
  awsRequestId: "req-1",
  getRemainingTimeInMillis: () => 30_000,
} as unknown as Context;

type StreamHandler = (event: unknown, stream: Writable, context: Context) => Promise<void>;
let streamedProxyHandler: typeof import("../src/lib/stream-response").streamedProxyHandler;

beforeAll(async () => {
  installLocalLambdaStreamingRuntime();
  ({ streamedProxyHandler } = await import("../src/lib/stream-response"));
});

describe("streamedProxyHandler", () => {
  it("marks the handler as streaming and writes status and headers as metadata, then the body", async () => {
    const handler = streamedProxyHandler(async () => ({
      statusCode: 201,
      headers: { "content-type": "application/json", "x-count": 2 },
      body: '{"ok":true}',
    })) as unknown as StreamHandler;
    expect(isStreamingHandler(handler)).toBe(true);
    const out = captured();
    await handler({}, out.stream, context);
    const { metadata, payload } = parse(out.bytes());
    expect(metadata).toEqual({
      statusCode: 201,
      headers: { "content-type": "application/json", "x-count": "2" },
    });
    expect(payload.toString("utf8")).toBe('{"ok":true}');
  });

  it("decodes a base64 body to the bytes it stands for", async () => {
    const bytes = Buffer.from([0, 1, 2, 254, 255]);
    const handler = streamedProxyHandler(async () => ({
      statusCode: 200,
      headers: { "content-type": "application/octet-stream" },
      body: bytes.toString("base64"),
      isBase64Encoded: true,
    })) as unknown as StreamHandler;
    const out = captured();
    await handler({}, out.stream, context);
    expect(parse(out.bytes()).payload).toEqual(bytes);
  });
});

describe("the chat handler (chat.ts)", () => {
  it("answers with the route table's chat handler: an unauthenticated call gets its OpenAI-shaped 401", async () => {
    Object.assign(process.env, {
      ATRIUM_STAGE_CONFIG: readFileSync("config/local.json", "utf8"),
      ATRIUM_TENANTS_TABLE: "tenants",
      ATRIUM_LIMITER_TABLE: "limiter",
      ATRIUM_USAGE_TABLE: "usage",
      ATRIUM_ENDPOINTS_TABLE: "endpoints",
    });
    const { handler } = (await import("../src/chat")) as unknown as { handler: StreamHandler };
    const event = {
      httpMethod: "POST",
      path: "/v1/chat/completions",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "llama-3.1-8b-instruct", messages: [{ role: "user", content: "hi" }] }),
      isBase64Encoded: false,
      requestContext: { requestId: "apigw-req-1" },
    } as unknown as APIGatewayProxyEvent;
    const out = captured();
    await handler(event, out.stream, context);
    const { metadata, payload } = parse(out.bytes());
    expect(metadata.statusCode).toBe(401);
    expect(metadata.headers["x-request-id"]).toBe("apigw-req-1");
    expect(JSON.parse(payload.toString("utf8")).error.code).toBe("invalid_api_key");
  });
});
