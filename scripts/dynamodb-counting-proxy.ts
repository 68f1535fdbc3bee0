/**
 * An HTTP proxy in front of DynamoDB for benchmarks: forwards every request unchanged and counts each
 * operation (X-Amz-Target) by the tables it names, as a read or a write. The hop it adds lands on
 * every call alike.
 */
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";

const WRITES = /^(UpdateItem|PutItem|DeleteItem|TransactWriteItems|BatchWriteItem)$/;

export interface TableCounts {
  reads: number;
  writes: number;
}

export interface DynamoCounts {
  /** Every request, by kind. */
  total: TableCounts;
  /** By table: a request naming two tables (a transaction) counts once for each. */
  byTable: Record<string, TableCounts>;
  /** By operation name, e.g. UpdateItem. */
  byOperation: Record<string, number>;
}

export interface CountingProxy {
  url: string;
  /** A copy of the counts so far. */
  snapshot(): DynamoCounts;
  close(): Promise<void>;
}

/** Sends a request read whole (`body`) on to `target` unchanged, and its answer back to `res`. */
export function forwardRequest(
  target: string,
  agent: Agent,
  req: IncomingMessage,
  body: Buffer,
  res: ServerResponse,
): void {
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
}

export async function startCountingProxy(target: string): Promise<CountingProxy> {
  let counts = emptyCounts();
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      // DynamoDB's JSON protocol names the operation in X-Amz-Target and the tables in the body.
      const operation = String(req.headers["x-amz-target"] ?? "").split(".")[1] ?? "";
      count(counts, operation, tablesOf(body));
      forwardRequest(target, agent, req, body, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    snapshot: () => structuredClone(counts),
    close: () => {
      counts = emptyCounts();
      agent.destroy();
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** What happened between two snapshots. */
export function countsBetween(before: DynamoCounts, after: DynamoCounts): DynamoCounts {
  const minus = (a: TableCounts, b: TableCounts | undefined): TableCounts => ({
    reads: a.reads - (b?.reads ?? 0),
    writes: a.writes - (b?.writes ?? 0),
  });
  return {
    total: minus(after.total, before.total),
    byTable: Object.fromEntries(
      Object.entries(after.byTable)
        .map(([table, c]) => [table, minus(c, before.byTable[table])] as const)
        .filter(([, c]) => c.reads + c.writes > 0),
    ),
    byOperation: Object.fromEntries(
      Object.entries(after.byOperation)
        .map(([op, n]) => [op, n - (before.byOperation[op] ?? 0)] as const)
        .filter(([, n]) => n > 0),
    ),
  };
}

function emptyCounts(): DynamoCounts {
  return { total: { reads: 0, writes: 0 }, byTable: {}, byOperation: {} };
}

function count(counts: DynamoCounts, operation: string, tables: string[]): void {
  const kind = WRITES.test(operation) ? "writes" : "reads";
  counts.total[kind] += 1;
  counts.byOperation[operation] = (counts.byOperation[operation] ?? 0) + 1;
  for (const table of tables) {
    counts.byTable[table] ??= { reads: 0, writes: 0 };
    (counts.byTable[table] as TableCounts)[kind] += 1;
  }
}

type Named = { TableName?: unknown };
type Body = Named & {
  RequestItems?: Record<string, unknown>;
  TransactItems?: Record<string, Named>[];
};

/** The tables a DynamoDB JSON request names: TableName, a batch's RequestItems, a transaction's items. */
export function tablesOf(body: Buffer): string[] {
  let parsed: Body;
  try {
    parsed = JSON.parse(body.toString("utf8")) as Body;
  } catch {
    return [];
  }
  const names = new Set<string>();
  if (typeof parsed.TableName === "string") names.add(parsed.TableName);
  for (const name of Object.keys(parsed.RequestItems ?? {})) names.add(name);
  for (const item of parsed.TransactItems ?? []) {
    for (const action of Object.values(item)) {
      if (typeof action?.TableName === "string") names.add(action.TableName);
    }
  }
  return [...names];
}
