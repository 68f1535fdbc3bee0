/**
 * An HTTP proxy a test puts between the handlers and DynamoDB to hold chosen requests: a request the
 * test's predicate picks is kept, unanswered and unforwarded, until `release()`; every other one
 * passes at once. It shows what waits on a write without timing anything: a response that arrives
 * while its call's write is held did not wait for it.
 */
import { Agent, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { forwardRequest } from "../../scripts/dynamodb-counting-proxy";

/** A DynamoDB request as the proxy sees it: the operation (X-Amz-Target) and the JSON body. */
export interface DynamoRequest {
  operation: string;
  body: string;
}

export interface HoldingProxy {
  url: string;
  /** From now on, requests for which `pick` is true are held. */
  hold(pick: (request: DynamoRequest) => boolean): void;
  /** The requests held so far and not yet released. */
  held(): DynamoRequest[];
  /** Forwards every held request, and holds nothing more. */
  release(): void;
  close(): Promise<void>;
}

export async function startHoldingProxy(target: string): Promise<HoldingProxy> {
  const agent = new Agent({ keepAlive: true });
  let pick: ((request: DynamoRequest) => boolean) | undefined;
  const waiting: { request: DynamoRequest; forward: () => void }[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const forward = () => forwardRequest(target, agent, req, body, res);
      const request = {
        operation: String(req.headers["x-amz-target"] ?? "").split(".")[1] ?? "",
        body: body.toString("utf8"),
      };
      if (pick?.(request)) waiting.push({ request, forward });
      else forward();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const release = () => {
    pick = undefined;
    for (const { forward } of waiting.splice(0)) forward();
  };
  return {
    url: `http://127.0.0.1:${port}`,
    hold: (chosen) => {
      pick = chosen;
    },
    held: () => waiting.map(({ request }) => request),
    release,
    close: async () => {
      release();
      server.closeAllConnections();
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
