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
  return { status, headers, body: text.slice(end + 4) };
}
