import { randomUUID } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { dirname } from "node:path";
import { gunzipSync } from "node:zlib";
import { type MetricRecord, parseEmf } from "./cloudwatch-emf";
import { OPERATIONS } from "./cloudwatch-operations";
import { CloudWatchError, Params } from "./cloudwatch-params";
import { decodeRequest, encodeError, encodeOutput, type Protocol, protocolOf } from "./cloudwatch-protocols";
import { MetricStore, type StoreSnapshot } from "./cloudwatch-store";
import { listen, readBody } from "./http-server";

/**
 * A local CloudWatch (metrics only): PutMetricData, GetMetricData, GetMetricStatistics and
 * ListMetrics on the wire protocols the AWS SDKs and CLIs use, so they work against it unmodified,
 * plus the EMF lines the handlers print. One account and region; signatures are not checked.
 */

export interface CloudWatchEmulatorOptions {
  host?: string;
  port?: number;
  /** Where the data is kept between runs (read at start, written at close); none keeps it in memory only. */
  dataFile?: string;
  now?: () => number;
}

export interface CloudWatchEmulator {
  url: string;
  store: MetricStore;
  /** Stores the metrics of EMF lines; returns how many datapoints they held. */
  ingest(records: MetricRecord[]): number;
  ingestEmf(line: string): number;
  close(): Promise<void>;
}

/** PutMetricData takes at most 1 MB per request. */
const MAX_BODY_BYTES = 1024 * 1024;
/** The SDKs gzip PutMetricData bodies over 10 kB (its requestCompression trait). */
const MAX_INFLATED_BYTES = 16 * MAX_BODY_BYTES;

export async function startCloudWatchEmulator(
  options: CloudWatchEmulatorOptions = {},
): Promise<CloudWatchEmulator> {
  const now = options.now ?? Date.now;
  const store = new MetricStore({ now });
  if (options.dataFile) {
    const snapshot = await readSnapshot(options.dataFile);
    if (snapshot) store.restore(snapshot);
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestId = randomUUID();
    const head = { method: req.method ?? "GET", url: req.url ?? "/", headers: req.headers };
    const detected = protocolOf(head);
    // A request in no protocol at all is answered in JSON 1.0, the SDK's.
    const protocol: Protocol = detected ?? "json";
    const answer = (response: ReturnType<typeof encodeError>) => {
      res.writeHead(response.status, { ...response.headers, "content-length": response.body.length });
      res.end(response.body);
    };
    const received = await readBody(req, MAX_BODY_BYTES);
    try {
      if (!received)
        throw new CloudWatchError("RequestEntityTooLarge", `The request is over ${MAX_BODY_BYTES} bytes.`);
      const body = /gzip/i.test(String(req.headers["content-encoding"] ?? "")) ? inflate(received) : received;
      if (!detected) {
        throw new CloudWatchError(
          "InvalidAction",
          `No CloudWatch operation at ${head.method} ${head.url}: send AWS JSON 1.0, RPC v2 CBOR or awsQuery requests.`,
        );
      }
      const { operation, input } = decodeRequest(protocol, { ...head, body });
      const run = Object.hasOwn(OPERATIONS, operation) ? OPERATIONS[operation] : undefined;
      if (!run) {
        throw new CloudWatchError(
          "InvalidAction",
          `The local CloudWatch does not serve ${operation}; it serves ${Object.keys(OPERATIONS).join(", ")}.`,
        );
      }
      answer(encodeOutput(protocol, operation, run(Params.of(input), { store, now }), requestId));
    } catch (err) {
      const error =
        err instanceof CloudWatchError
          ? err
          : new CloudWatchError(
              "InternalServiceError",
              `The local CloudWatch failed: ${(err as Error).message}`,
            );
      answer(encodeError(protocol, error, requestId));
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  const url = await listen(server, options.port ?? 0, options.host ?? "127.0.0.1");

  const ingest = (records: MetricRecord[]) => {
    for (const { metric, datum } of records) store.put(metric, datum);
    return records.length;
  };
  return {
    url,
    store,
    ingest,
    ingestEmf: (line) => ingest(parseEmf(line, now()) ?? []),
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // Calls in flight finish; a client holding a kept-alive socket open is not waited for long.
      const straggler = setTimeout(() => server.closeAllConnections(), 1000);
      await closed;
      clearTimeout(straggler);
      if (options.dataFile) await writeSnapshot(options.dataFile, store.snapshot());
    },
  };
}

function inflate(body: Buffer): Buffer {
  try {
    return gunzipSync(body, { maxOutputLength: MAX_INFLATED_BYTES });
  } catch (err) {
    throw new CloudWatchError(
      "SerializationException",
      `The gzip request body could not be read: ${(err as Error).message}`,
    );
  }
}

async function readSnapshot(file: string): Promise<StoreSnapshot | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  try {
    const snapshot = JSON.parse(text) as StoreSnapshot;
    if (snapshot.version !== 1) throw new Error(`unknown version ${snapshot.version}`);
    return snapshot;
  } catch (err) {
    throw new Error(
      `Cannot read the local CloudWatch's data in ${file} (${(err as Error).message}); remove it to start afresh.`,
    );
  }
}

/** Written whole then renamed, so a crash mid-write leaves the previous file. */
async function writeSnapshot(file: string, snapshot: StoreSnapshot): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, JSON.stringify(snapshot), { mode: 0o600 });
  await rename(temporary, file);
}
