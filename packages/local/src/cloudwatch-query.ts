import { CloudWatchError } from "./cloudwatch-params";

/**
 * CloudWatch's awsQuery protocol, which older AWS CLIs and SDKs speak: form-encoded parameters
 * (`Action=GetMetricData&Version=2010-08-01&MetricDataQueries.member.1.Id=a`) and XML answers.
 */

export const XML_NAMESPACE = "http://monitoring.amazonaws.com/doc/2010-08-01/";

/** `A.member.1.B=x&A.member.2.B=y` → `{ A: [{ B: "x" }, { B: "y" }] }`: lists in member order, values as strings. */
export function parseQueryParameters(params: URLSearchParams): {
  action?: string;
  input: Record<string, unknown>;
} {
  const root = record();
  let action: string | undefined;
  for (const [key, value] of params) {
    if (key === "Action") action = value;
    else if (key !== "Version") assign(root, key.split("."), value, key);
  }
  return { ...(action ? { action } : {}), input: listsOf(root) as Record<string, unknown> };
}

function assign(root: Record<string, unknown>, path: string[], value: string, key: string): void {
  let node = root;
  for (const [i, segment] of path.entries()) {
    if (i === path.length - 1) {
      if (segment in node) throw malformed(key);
      node[segment] = value;
      return;
    }
    const next = node[segment] ?? record();
    if (typeof next !== "object") throw malformed(key);
    node[segment] = next;
    node = next as Record<string, unknown>;
  }
}

/** Turns every `{ member: { "1": a, "2": b } }` into `[a, b]`. */
function listsOf(node: unknown): unknown {
  if (typeof node !== "object" || node === null) return node;
  const record = node as Record<string, unknown>;
  const keys = Object.keys(record);
  if (keys.length === 1 && keys[0] === "member" && typeof record.member === "object") {
    const members = record.member as Record<string, unknown>;
    return Object.keys(members)
      .sort((a, b) => Number(a) - Number(b))
      .map((index) => listsOf(members[index]));
  }
  return Object.fromEntries(keys.map((key) => [key, listsOf(record[key])]));
}

/** Without a prototype, a parameter named `__proto__.x` is just a name. */
function record(): Record<string, unknown> {
  return Object.create(null) as Record<string, unknown>;
}

function malformed(key: string): CloudWatchError {
  return new CloudWatchError("SerializationException", `The query parameter ${key} conflicts with another.`);
}

export function xmlResponse(
  operation: string,
  output: Record<string, unknown> | undefined,
  requestId: string,
): string {
  const result = output ? element(`${operation}Result`, output) : "";
  const metadata = element("ResponseMetadata", { RequestId: requestId });
  return `<${operation}Response xmlns="${XML_NAMESPACE}">${result}${metadata}</${operation}Response>\n`;
}

export function xmlError(error: CloudWatchError, requestId: string): string {
  const body = element("Error", { Type: error.fault, Code: error.code, Message: error.message });
  return `<ErrorResponse xmlns="${XML_NAMESPACE}">${body}${element("RequestId", requestId)}</ErrorResponse>\n`;
}

/** awsQuery's XML: lists as `<member>`, maps as `<entry><key/><value/></entry>`, timestamps in ISO 8601. */
function element(name: string, value: unknown): string {
  if (value === undefined || value === null) return "";
  let inner: string;
  if (Array.isArray(value)) inner = value.map((item) => element("member", item)).join("");
  else if (value instanceof Map) {
    inner = [...value].map(([k, v]) => `<entry>${element("key", k)}${element("value", v)}</entry>`).join("");
  } else if (value instanceof Date) inner = value.toISOString();
  else if (typeof value === "object") {
    inner = Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => element(k, v))
      .join("");
  } else inner = escapeXml(String(value));
  return `<${name}>${inner}</${name}>`;
}

function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
