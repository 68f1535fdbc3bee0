/**
 * The request-path benchmark's three ways to reach one model container, each a request the load
 * client repeats: the container itself, the SageMaker emulator's InvokeEndpoint, and Atrium.
 */
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvokeEndpointCommand, SageMakerRuntimeClient } from "@aws-sdk/client-sagemaker-runtime";
import { generateApiKey } from "../../packages/core/src/api-key";
import { newTenant } from "../../packages/core/src/tenant";
import type { Platform, PlatformOptions } from "../../packages/local/src/platform";
import { type LoadJob, startModelContainer } from "./load";

export const MODEL = "bench-container";
export const ENDPOINT = "atrium-shared-bench-container";
export const PATHS = ["container", "emulator", "atrium"] as const;
export type Path = (typeof PATHS)[number];
export type Target = Omit<LoadJob, "connections" | "seconds">;

const MESSAGES = [{ role: "user", content: "How fast is Atrium?" }];
const MAX_TOKENS = 32;
/** Far above anything the benchmark sends: nothing is refused (the burst a minute's worth, as by default). */
const UNLIMITED = {
  requestsPerMinute: 10_000_000,
  burst: 10_000_000,
  tokensPerMinute: 1_000_000_000,
  concurrency: 10_000,
  monthlyTokens: 1e15,
};
/** One call a minute: after the first, every call is refused. */
const TINY = {
  requestsPerMinute: 1,
  burst: 1,
  tokensPerMinute: 100_000,
  concurrency: 10,
  monthlyTokens: 1e9,
};

/** config/local.json with the two benchmark tiers, and the container (if any) as one more shared endpoint. */
export async function writeBenchConfig(
  base: string,
  dataDir: string,
  containerUrl?: string,
): Promise<string> {
  const config = JSON.parse(base);
  const tier = (limits: typeof UNLIMITED) => ({ ...config.tiers.pro, limits, limiterFailMode: "closed" });
  if (containerUrl) config.sharedEndpoints.push({ model: MODEL, endpointName: ENDPOINT, containerUrl });
  config.tiers["bench-unlimited"] = tier(UNLIMITED);
  config.tiers["bench-tiny"] = tier(TINY);
  const file = join(dataDir, "bench-config.json");
  await writeFile(file, JSON.stringify(config));
  return file;
}

/** A tenant of the tier and its API key. */
export async function benchTenant(platform: Platform, tier: string): Promise<string> {
  const tenant = newTenant({ name: `Bench ${tier}`, tier }, platform.config);
  const key = generateApiKey();
  await platform.tenantStore.create(tenant, key);
  return key.plaintext;
}

/** What the handler sends the model: the body both the container and the emulator paths send. */
const modelBody = JSON.stringify({ messages: MESSAGES, max_tokens: MAX_TOKENS });

export function containerTarget(containerUrl: string): Target {
  return {
    url: `${containerUrl}/invocations`,
    headers: { "content-type": "application/json" },
    body: modelBody,
  };
}

export function atriumTarget(platform: Platform, apiKey: string): Target {
  return {
    url: `${platform.gatewayUrl}/v1/chat/completions`,
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages: MESSAGES, max_tokens: MAX_TOKENS }),
  };
}

/**
 * InvokeEndpoint as the AWS SDK sends it: one real call, whose signed request (headers as they left
 * the SDK) the load client then repeats. The emulator checks the signature's form, not its age.
 */
export async function emulatorTarget(platform: Platform): Promise<Target> {
  const sdk = new SageMakerRuntimeClient({
    endpoint: platform.sagemakerUrl,
    region: platform.config.region,
    credentials: { accessKeyId: "bench", secretAccessKey: "bench" },
    maxAttempts: 1,
  });
  let headers: Record<string, string> = {};
  sdk.middlewareStack.add(
    (next) => (args) => {
      headers = { ...(args.request as { headers: Record<string, string> }).headers };
      return next(args);
    },
    { step: "deserialize", priority: "low", name: "benchCaptureSignedRequest" },
  );
  try {
    await sdk.send(
      new InvokeEndpointCommand({ EndpointName: ENDPOINT, ContentType: "application/json", Body: modelBody }),
    );
  } finally {
    sdk.destroy();
  }
  if (!headers.authorization) throw new Error("the SDK's signed InvokeEndpoint request was not captured");
  return { url: `${platform.sagemakerUrl}/endpoints/${ENDPOINT}/invocations`, headers, body: modelBody };
}

/**
 * The model container and a platform in front of it, as the request-path benchmarks run them. `start`
 * is the platform's startPlatform, imported by the caller once its environment is set.
 */
export async function startBenchPlatform(
  start: (options: PlatformOptions) => Promise<Platform>,
  repoRoot: string,
  dataDirPrefix: string,
  interposeDynamodb?: PlatformOptions["interposeDynamodb"],
) {
  const container = await startModelContainer(ENDPOINT);
  const dataDir = await mkdtemp(join(tmpdir(), dataDirPrefix));
  const base = await readFile(join(repoRoot, "config", "local.json"), "utf8");
  const platform = await start({
    port: 0,
    dataDir,
    ephemeral: true,
    configFile: await writeBenchConfig(base, dataDir, container.url),
    ...(interposeDynamodb ? { interposeDynamodb } : {}),
  });
  return { container, dataDir, platform };
}
