import type { IncomingHttpHeaders } from "node:http";
import { cbor, dateToTag, tagSymbol } from "@smithy/core/cbor";
import { CloudWatchError } from "./cloudwatch-params";
import { parseQueryParameters, xmlError, xmlResponse } from "./cloudwatch-query";

/**
 * The three wire protocols CloudWatch's clients speak, and the one each request came in:
 * - AWS JSON 1.0 (`@aws-sdk/client-cloudwatch` v3, botocore 1.43: the AWS CLI v1 and boto3):
 *   `POST /`, `X-Amz-Target: GraniteServiceVersion20100801.<Operation>`, timestamps in epoch seconds;
 * - Smithy RPC v2 CBOR (listed first in CloudWatch's model, for clients that choose it):
 *   `POST /service/GraniteServiceVersion20100801/operation/<Operation>`, `smithy-protocol: rpc-v2-cbor`;
 * - awsQuery (older CLIs and SDKs): form-encoded `Action=<Operation>`, XML answers.
 * JSON and CBOR errors carry the awsQuery code in `x-amzn-query-error` (CloudWatch is awsQueryCompatible).
 */

export type Protocol = "json" | "cbor" | "query";

export interface WireRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface WireResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

const SERVICE = "GraniteServiceVersion20100801";
const SHAPE_NAMESPACE = "com.amazonaws.cloudwatch";
const CBOR_PATH = /\/service\/([^/]+)\/operation\/([^/]+)$/;
const JSON_TYPE = "application/x-amz-json-1.0";

/** Which protocol a request speaks; undefined when it speaks none of them. */
export function protocolOf(request: Omit<WireRequest, "body">): Protocol | undefined {
  const path = request.url.split("?")[0] ?? "";
  if (request.headers["smithy-protocol"] === "rpc-v2-cbor" || CBOR_PATH.test(path)) return "cbor";
  if (request.headers["x-amz-target"]) return "json";
  const form = (request.headers["content-type"] ?? "").startsWith("application/x-www-form-urlencoded");
  if ((request.method === "POST" && form) || (request.method === "GET" && request.url.includes("Action="))) {
    return "query";
  }
  return undefined;
}

/** The operation named and its decoded input. */
export function decodeRequest(
  protocol: Protocol,
  request: WireRequest,
): { operation: string; input: unknown } {
  switch (protocol) {
    case "json": {
      const target = String(request.headers["x-amz-target"]);
      const operation = target.startsWith(`${SERVICE}.`) ? target.slice(SERVICE.length + 1) : "";
      if (!operation) throw unknownOperation(`target ${target}`);
      return {
        operation,
        input: parse(() => (request.body.length ? JSON.parse(request.body.toString("utf8")) : {})),
      };
    }
    case "cbor": {
      const [, service, operation] = CBOR_PATH.exec(request.url.split("?")[0] ?? "") ?? [];
      if (request.method !== "POST" || request.headers["x-amz-target"] || request.headers["x-amzn-target"]) {
        throw new CloudWatchError(
          "SerializationException",
          "An RPC v2 CBOR request is a POST without X-Amz-Target.",
        );
      }
      if (!operation || (service !== SERVICE && service !== `${SHAPE_NAMESPACE}.${SERVICE}`)) {
        throw unknownOperation(`path ${request.url}`);
      }
      return {
        operation,
        input: parse(() => (request.body.length ? fromCbor(cbor.deserialize(request.body)) : {})),
      };
    }
    case "query": {
      const query = request.url.includes("?") ? request.url.slice(request.url.indexOf("?") + 1) : "";
      const form = request.method === "POST" ? request.body.toString("utf8") : "";
      const { action, input } = parseQueryParameters(
        new URLSearchParams([query, form].filter(Boolean).join("&")),
      );
      if (!action) throw new CloudWatchError("MissingParameter", "The parameter Action is required.");
      return { operation: action, input };
    }
  }
}

export function encodeOutput(
  protocol: Protocol,
  operation: string,
  output: Record<string, unknown> | undefined,
  requestId: string,
): WireResponse {
  switch (protocol) {
    case "json":
      return respond(
        200,
        JSON_TYPE,
        requestId,
        JSON.stringify(toWire(output ?? {}, (d) => d.getTime() / 1000)),
      );
    case "cbor":
      // An operation without output (PutMetricData) answers with no body and no Content-Type.
      if (!output) return { status: 200, headers: cborHeaders(requestId), body: Buffer.alloc(0) };
      return respond(
        200,
        "application/cbor",
        requestId,
        Buffer.from(cbor.serialize(toWire(output, dateToTag))),
        true,
      );
    case "query":
      return respond(200, "text/xml", requestId, xmlResponse(operation, output, requestId));
  }
}

export function encodeError(protocol: Protocol, error: CloudWatchError, requestId: string): WireResponse {
  const fields = { __type: `${SHAPE_NAMESPACE}#${error.shape}`, message: error.message };
  const response =
    protocol === "json"
      ? respond(error.status, JSON_TYPE, requestId, JSON.stringify(fields))
      : protocol === "cbor"
        ? respond(error.status, "application/cbor", requestId, Buffer.from(cbor.serialize(fields)), true)
        : respond(error.status, "text/xml", requestId, xmlError(error, requestId));
  if (protocol !== "query") response.headers["x-amzn-query-error"] = `${error.code};${error.fault}`;
  return response;
}

function respond(
  status: number,
  type: string,
  requestId: string,
  body: string | Buffer,
  isCbor = false,
): WireResponse {
  const headers = isCbor ? cborHeaders(requestId) : { "x-amzn-requestid": requestId };
  return { status, headers: { ...headers, "content-type": type }, body: Buffer.from(body) };
}

function cborHeaders(requestId: string): Record<string, string> {
  return { "x-amzn-requestid": requestId, "smithy-protocol": "rpc-v2-cbor" };
}

function unknownOperation(what: string): CloudWatchError {
  return new CloudWatchError("InvalidAction", `The local CloudWatch has no operation for ${what}.`);
}

function parse(decode: () => unknown): unknown {
  try {
    return decode();
  } catch (err) {
    throw new CloudWatchError(
      "SerializationException",
      `The request body could not be read: ${(err as Error).message}`,
    );
  }
}

/** Output to wire values: timestamps as `date` makes them, maps as structures, no undefined members. */
function toWire(value: unknown, date: (d: Date) => unknown): unknown {
  if (value instanceof Date) return date(value);
  if (Array.isArray(value)) return value.map((item) => toWire(item, date));
  if (value instanceof Map) return toWire(Object.fromEntries(value), date);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, toWire(v, date)]),
    );
  }
  return value;
}

/** CBOR input to plain values: tag 1 (epoch seconds) becomes a Date. */
function fromCbor(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromCbor);
  if (typeof value === "object" && value !== null && !(value instanceof Uint8Array)) {
    const tagged = value as { [tagSymbol]?: boolean; tag?: unknown; value?: unknown };
    if (tagged[tagSymbol] && tagged.tag === 1) return new Date(Number(tagged.value) * 1000);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromCbor(v)]));
  }
  return value;
}
