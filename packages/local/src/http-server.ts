/** Small pieces the local stand-ins' HTTP servers share. */
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** Listens on host:port (0 = a free port) and returns the base URL. */
export function listen(server: Server, port: number, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const address = server.address() as AddressInfo;
      const shown = address.family === "IPv6" ? `[${address.address}]` : address.address;
      resolve(`http://${shown}:${address.port}`);
    });
  });
}

/** The client closed its connection before its request's body ended: there is no one to answer. */
export class ClientGone extends Error {
  constructor() {
    super("the client closed the connection before its request's body ended");
    this.name = "ClientGone";
  }
}

/**
 * The request body, or undefined when it is over `limit` bytes. Past the limit it keeps reading
 * without buffering, so the client finishes sending and can read the error on a reusable connection.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  // Events, not an async iterator: this runs on every call, and the iterator's machinery cost more
  // than the read itself (a CPU profile of the gateway's request path).
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    req.once("end", () => resolve(size > limit ? undefined : Buffer.concat(chunks, size)));
    // The client went before its body ended (Node reports it as an error, then a close).
    req.once("error", () => reject(new ClientGone()));
    req.once("close", () => {
      if (!req.complete) reject(new ClientGone());
    });
  });
}

/** Adds `value` to the values collected under `name` (headers or query parameters, in order). */
export function appendValue(values: Map<string, string[]>, name: string, value: string): void {
  const existing = values.get(name);
  if (existing) existing.push(value);
  else values.set(name, [value]);
}

/** decodeURIComponent that leaves a malformed escape as it came. */
export function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** Resolves once the response has been handed to the socket (or the socket went away). */
export function responseFlushed(res: ServerResponse): Promise<void> {
  if (res.writableFinished || res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    res.once("finish", resolve);
    res.once("close", resolve);
  });
}
