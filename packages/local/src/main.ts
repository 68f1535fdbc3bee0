/** `npm start`: the whole platform on this machine, until Ctrl-C. */
import { parseArgs } from "node:util";
import { engineOptions, startDynamo } from "./dynamodb";
import type { AccessLogEntry } from "./gateway";

const USAGE = `Usage: npm start [-- --ephemeral] [--port N] [--data-dir DIR] [--config FILE] [--token-delay-ms N]

  --ephemeral         keep DynamoDB and CloudWatch in memory (nothing survives a restart)
  --port N            API gateway port (default: $PORT or 3000; 0 picks a free port)
  --data-dir DIR      where data and local.json live (default: .atrium)
  --config FILE       stage config (default: config/local.json)
  --token-delay-ms N  the reference model's pause between streamed tokens (default: 5)
`;

function parseOptions() {
  try {
    return parseArgs({
      options: {
        ephemeral: { type: "boolean", default: false },
        port: { type: "string" },
        "data-dir": { type: "string" },
        config: { type: "string" },
        "token-delay-ms": { type: "string", default: "5" },
        help: { type: "boolean", short: "h", default: false },
      },
    }).values;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
}

function accessLine(entry: AccessLogEntry): string {
  const tenant = entry.tenantId ? ` tenant=${entry.tenantId}` : "";
  const error = entry.error ? ` (${entry.error})` : "";
  const ttft = entry.ttftMs !== undefined ? ` ttft=${entry.ttftMs}ms` : "";
  const stream = entry.stream ? ` stream=${entry.stream}` : "";
  return `${entry.method} ${entry.path} ${entry.status} ${entry.latencyMs}ms${ttft}${stream}${tenant}${error}\n`;
}

const args = parseOptions();
if (args.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const port = Number(args.port ?? process.env.PORT ?? 3000);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`Invalid port '${args.port ?? process.env.PORT}': use a number from 0 to 65535.\n`);
  process.exit(2);
}
const tokenDelayMs = Number(args["token-delay-ms"]);
if (!Number.isInteger(tokenDelayMs) || tokenDelayMs < 0) {
  process.stderr.write(`Invalid --token-delay-ms '${args["token-delay-ms"]}': use a whole number of ms.\n`);
  process.exit(2);
}
// EMF metric lines go to the local CloudWatch, not the terminal. (Lambda runs Node 22, so the SDK's
// Node 20 deprecation notice says nothing about production.)
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

// The JVM takes seconds to come up: it starts first, while the rest of the platform loads.
const dataDir = args["data-dir"] ?? ".atrium";
const engine = startDynamo(engineOptions(dataDir, args.ephemeral));
// Its failure (no Java, say) is reported once, by the start below.
engine.catch(() => {});
const { startPlatform } = await import("./platform");
const starting = startPlatform({
  port,
  ephemeral: args.ephemeral,
  engine,
  dataDir,
  tokenDelayMs,
  ...(args.config ? { configFile: args.config } : {}),
  onAccess: (entry) => process.stdout.write(accessLine(entry)),
});

/**
 * Stops cleanly whichever way the stop comes: SIGINT or SIGTERM to this process, to npm (which
 * forwards it) or to the whole group (so it may arrive twice at once), SIGHUP when the terminal
 * goes, or npm dying (this process is then re-parented). A second signal later than a moment after
 * the first forces the exit; the stop itself is bounded too.
 */
const DUPLICATE_SIGNAL_MS = 2000;
const STOP_DEADLINE_MS = 10_000;
let stoppingSince: number | undefined;

function stop(reason: string): void {
  if (stoppingSince !== undefined) {
    if (performance.now() - stoppingSince < DUPLICATE_SIGNAL_MS) return;
    process.stderr.write("Forced stop.\n");
    process.exit(130);
  }
  stoppingSince = performance.now();
  process.stdout.write(`\n${reason}: finishing in-flight requests and closing DynamoDB...\n`);
  const deadline = setTimeout(() => {
    process.stderr.write(`Atrium did not stop within ${STOP_DEADLINE_MS / 1000} s; exiting.\n`);
    process.exit(1);
  }, STOP_DEADLINE_MS);
  deadline.unref();
  // A signal during start-up stops the platform as soon as it is up.
  starting
    .then((platform) => platform.close())
    .then(
      () => {
        process.stdout.write("Atrium stopped cleanly.\n");
        process.exit(0);
      },
      (err) => {
        process.stderr.write(`Atrium did not stop cleanly: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => stop(signal));
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) stop("parent process ended");
}, 500).unref();

const platform = await starting.catch((err: NodeJS.ErrnoException) => {
  const reason = err.code === "EADDRINUSE" ? `port ${port} is in use (set PORT or --port)` : err.message;
  process.stderr.write(`Atrium could not start: ${reason}\n`);
  process.exit(1);
});

const { gatewayUrl, demoTenant } = platform;
process.stdout.write(`Atrium local platform is up in ${(performance.now() / 1000).toFixed(1)} s (stage ${platform.stage})

  API gateway        ${gatewayUrl}          (OpenAI base URL: ${gatewayUrl}/v1)
  SageMaker Runtime  ${platform.sagemakerUrl}
  CloudWatch         ${platform.cloudwatchUrl}   (metrics: the handlers' EMF and AWS/SageMaker)
  DynamoDB           ${platform.dynamodbUrl}   (${args.ephemeral ? "in memory" : `data in ${platform.dataDir}`})
  Shared endpoints   ${platform.sharedEndpoints.join(", ")}
  Demo tenant        ${demoTenant.id}
  Demo API key       ${demoTenant.apiKey}
  Details            ${platform.dataDir}/local.json (admin token, URLs)

Try it:
  curl -s ${gatewayUrl}/v1/chat/completions \\
    -H "Authorization: Bearer ${demoTenant.apiKey}" -H "Content-Type: application/json" \\
    -d '{"model":"${platform.config.sharedEndpoints[0]?.model ?? "MODEL"}","messages":[{"role":"user","content":"Hello"}]}'

Slow, failing or saturated endpoints (docs/local-faults.md):
  npx atrium local fault set ${platform.sharedEndpoints[0] ?? "ENDPOINT"} --latency-ms 200 --error-rate 0.3 --capacity 2
  npx atrium local fault list     npx atrium local fault clear

Its metrics, with any AWS CLI or SDK (no AWS account needed):
  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local aws cloudwatch list-metrics \\
    --endpoint-url ${platform.cloudwatchUrl} --region ${platform.config.region} --namespace Atrium

Ctrl-C stops it; data is kept in ${platform.dataDir} unless --ephemeral.
`);
