/**
 * An HTTP proxy in front of DynamoDB for benchmarks: forwards every request unchanged and counts the
 * reads and writes that name one table. The hop it adds lands on every call alike.
 */
import { Agent, createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";

const WRITES = /^(UpdateItem|PutItem|DeleteItem|TransactWriteItems|BatchWriteItem)$/;

export interface CountingProxy {
  url: string;
  /** Requests so far that named the table: writes, and every other operation. */
  counts: { writes: number; reads: number };
  close(): Promise<void>;
}

export async function startCountingProxy(target: string, tableName: string): Promise<CountingProxy> {
  const counts = { writes: 0, reads: 0 };
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      // DynamoDB's JSON protocol names the operation in X-Amz-Target and the table in the body.
      const operation = String(req.headers["x-amz-target"] ?? "").split(".")[1] ?? "";
      if (body.includes(`"${tableName}"`)) {
        if (WRITES.test(operation)) counts.writes += 1;
        else counts.reads += 1;
      }
      const upstream = httpRequest(
        new URL(req.url ?? "/", target),
        { method: req.method, headers: req.headers, agent },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on("error", () => res.destroy());
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    close: () => {
      agent.destroy();
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
