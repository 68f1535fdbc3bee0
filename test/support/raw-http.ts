/** Hand-written HTTP/1.1 over node:net, for requests fetch will not send (repeated or odd headers). */
import { connect } from "node:net";

export interface RawResponse {
  status: number;
  /** Lower-cased names, every value. */
  headers: Map<string, string[]>;
  body: string;
}

/**
 * Sends `requestLine` and `headerLines` exactly as given (plus Host, Content-Length and
 * `Connection: close`) and reads the answer until the server closes the connection.
 */
export function rawRequest(
  baseUrl: string,
  requestLine: string,
  headerLines: readonly string[],
  body = "",
): Promise<RawResponse> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    socket.on("data", (chunk) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("end", () => {
      try {
        resolve(parseResponse(Buffer.concat(chunks).toString("utf8")));
      } catch (err) {
        reject(err);
      }
    });
    const head = [
      requestLine,
      `Host: ${hostname}:${port}`,
      ...headerLines,
      `Content-Length: ${Buffer.byteLength(body)}`,
      "Connection: close",
    ];
    // Not end(): a half-closed socket makes node:http abandon the request before it answers.
    socket.write(`${head.join("\r\n")}\r\n\r\n${body}`);
  });
}

function parseResponse(text: string): RawResponse {
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) throw new Error(`no complete HTTP response: ${JSON.stringify(text.slice(0, 200))}`);
  const [statusLine = "", ...lines] = text.slice(0, end).split("\r\n");
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1]);
  const headers = new Map<string, string[]>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).trim().toLowerCase();
    headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
  }
  const raw = text.slice(end + 4);
  const chunked = headers.get("transfer-encoding")?.some((value) => /chunked/i.test(value)) ?? false;
  return { status, headers, body: chunked ? dechunk(raw) : raw };
}

/** The payload of a chunked body (hex size line, data, CRLF; a zero-size chunk ends it). */
function dechunk(raw: string): string {
  const bytes = Buffer.from(raw, "utf8");
  const parts: Buffer[] = [];
  let at = 0;
  while (at < bytes.length) {
    const lineEnd = bytes.indexOf("\r\n", at);
    if (lineEnd < 0) throw new Error("truncated chunked body");
    const size = Number.parseInt(bytes.subarray(at, lineEnd).toString("latin1"), 16);
    if (size === 0) break;
    parts.push(bytes.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts).toString("utf8");
}
