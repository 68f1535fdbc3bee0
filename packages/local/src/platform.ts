/**
 * The whole platform on one machine: AWS's DynamoDB Local, the SageMaker Runtime emulator, a local
 * CloudWatch fed by the handlers' EMF output, and the API Gateway emulator running the real
 * authorizer and handlers. Handlers find the stand-ins through the AWS SDK's own endpoint
 * variables, exactly as they find AWS when deployed.
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { generateApiKey, hashApiKey } from "@atrium/core/api-key";
import { loadStageConfigFile, STAGE_CONFIG_ENV, type StageConfig } from "@atrium/core/config";
import { TenantStore } from "@atrium/core/store";
import { EndpointTable, IdempotencyTable, LimiterTable, TenantTable, UsageTable } from "@atrium/core/tables";
import { newTenant } from "@atrium/core/tenant";
import { authorizer, binaryMediaTypes, routes } from "@atrium/functions/api";
import { StackEnv } from "@atrium/functions/lib/stack-env";
import { type CloudWatchEmulator, startCloudWatchEmulator } from "./cloudwatch";
import { captureEmf } from "./cloudwatch-emf";
import { SageMakerMetrics } from "./cloudwatch-sagemaker";
import {
  dynamoClientFor,
  engineOptions,
  ensureTable,
  type LocalDynamo,
  localDynamoClient,
  startDynamo,
} from "./dynamodb";
import {
  type AccessLogEntry,
  API_ID,
  type ApiGatewayEmulator,
  type LambdaHandler,
  startApiGateway,
} from "./gateway";
import { type SageMakerEmulator, startSageMakerEmulator } from "./sagemaker-emulator";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

export interface PlatformOptions {
  /** Gateway port; 0 picks a free one. Default 3000. */
  port?: number;
  host?: string;
  /** Where DynamoDB data and local.json live. Default `.atrium` in the working directory. */
  dataDir?: string;
  /** Keep DynamoDB and CloudWatch in memory: nothing survives a restart. */
  ephemeral?: boolean;
  /** DynamoDB Local already starting (`startDynamo(engineOptions(...))`): the platform waits for it and owns it. */
  engine?: Promise<LocalDynamo>;
  /** Use this running DynamoDB (e.g. the one a test run shares) instead of starting one. */
  dynamodbUrl?: string;
  /** Table names start with this (default `atrium-local`), so platforms can share one DynamoDB. */
  tablePrefix?: string;
  /** Stage config file. Default config/local.json of the repo. */
  configFile?: string;
  /** Overrides the config's authorizer cache TTL (tests use short ones). */
  authorizerCacheTtlSeconds?: number;
  /** The reference model's pause between streamed tokens (default 0). */
  tokenDelayMs?: number;
  /** Overrides API Gateway's 29 s integration timeout (tests). */
  integrationTimeoutMs?: number;
  /** Overrides a STREAM route's 15-minute integration timeout, which bounds the whole response (tests). */
  streamedIntegrationTimeoutMs?: number;
  /** Returns the DynamoDB URL the handlers use instead of DynamoDB's own (tests interpose a proxy). */
  interposeDynamodb?: (dynamodbUrl: string) => Promise<string>;
  onAccess?: (entry: AccessLogEntry) => void;
}

/** What `.atrium/local.json` holds: how the CLI, tests and people find the running platform. */
export interface LocalInfo {
  stage: string;
  gatewayUrl: string;
  sagemakerUrl: string;
  cloudwatchUrl: string;
  dynamodbUrl: string;
  adminToken: string;
  tenantsTable: string;
  limitsTable: string;
  idempotencyTable: string;
  usageTable: string;
  endpointsTable: string;
  sharedEndpoints: string[];
  demoTenant: { id: string; apiKey: string };
}

export interface Platform extends LocalInfo {
  config: StageConfig;
  dataDir: string;
  gateway: ApiGatewayEmulator;
  sagemaker: SageMakerEmulator;
  cloudwatch: CloudWatchEmulator;
  tenantStore: TenantStore;
  close(): Promise<void>;
}

const STAGE = "local";
/** Every table the platform uses, by the suffix of its local name. */
const TABLES = {
  tenants: TenantTable,
  limits: LimiterTable,
  idempotency: IdempotencyTable,
  usage: UsageTable,
  endpoints: EndpointTable,
} as const;
type TableNames = Record<keyof typeof TABLES, string>;

// Handlers read their environment once, when first imported: one platform's endpoints per process.
let boundEnvironment: string | undefined;

export async function startPlatform(options: PlatformOptions = {}): Promise<Platform> {
  const dataDir = resolve(options.dataDir ?? ".atrium");
  const configFile = options.configFile ?? join(REPO_ROOT, "config", "local.json");
  const config = loadStageConfigFile(configFile);
  // It holds the admin token, the demo key and the tenants' data: this user's only.
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await chmod(dataDir, 0o700);
  const previous = await readLocalInfo(dataDir);

  const dynamo = options.dynamodbUrl
    ? { url: options.dynamodbUrl, close: async () => {} }
    : await (options.engine ?? startDynamo(engineOptions(dataDir, options.ephemeral)));
  const closers: (() => Promise<void>)[] = [dynamo.close];
  try {
    const handlersDynamodbUrl = (await options.interposeDynamodb?.(dynamo.url)) ?? dynamo.url;
    const client = localDynamoClient(dynamo.url, { region: config.region });
    closers.unshift(async () => client.destroy());
    const prefix = options.tablePrefix ?? `atrium-${STAGE}`;
    const tables = Object.fromEntries(
      Object.keys(TABLES).map((name) => [name, `${prefix}-${name}`]),
    ) as TableNames;
    for (const [name, shape] of Object.entries(TABLES)) {
      await ensureTable(client, tables[name as keyof TableNames], shape);
    }
    const documents = dynamoClientFor(dynamo.url, { region: config.region });
    closers.unshift(async () => documents.destroy());
    const tenantStore = new TenantStore(documents, tables.tenants);

    const cloudwatch = await startCloudWatchEmulator(
      options.ephemeral ? {} : { dataFile: join(dataDir, "cloudwatch.json") },
    );
    closers.unshift(cloudwatch.close);
    // As CloudWatch Logs does with a function's output: EMF lines become metrics (and leave the terminal).
    const stopCapture = captureEmf(process.stdout, cloudwatch.ingest);
    const sagemakerMetrics = new SageMakerMetrics(cloudwatch.store);
    closers.unshift(async () => {
      stopCapture();
      sagemakerMetrics.close();
    });

    const adminToken = previous?.adminToken ?? `atr_admin_${randomBytes(24).toString("base64url")}`;
    const sagemaker = await startSageMakerEmulator({
      tokenDelayMs: options.tokenDelayMs ?? 0,
      observer: sagemakerMetrics,
      // `atrium local fault` sets endpoints' conditions with the admin token (docs/local-faults.md).
      adminToken,
      resolveEndpoint: async (name) => {
        const shared = config.sharedEndpoints.find((e) => e.endpointName === name);
        if (shared)
          return shared.containerUrl
            ? { kind: "container", url: shared.containerUrl }
            : { kind: "reference" };
        // Stand-in for the stacks: every endpoint dedicated to a tenant exists.
        return (await tenantStore.endpointClaim(name)) ? { kind: "reference" } : undefined;
      },
    });
    closers.unshift(sagemaker.close);

    // FAKE of IAM: only the functions hold this secret; the gateway verifies their SigV4 control-plane calls.
    const functionCredentials = {
      accessKeyId: "local",
      secretAccessKey: randomBytes(24).toString("base64url"),
    };
    const cacheTtl = options.authorizerCacheTtlSeconds ?? config.authorizerCacheTtlSeconds;
    const gateway = await startApiGateway({
      ...(options.host ? { host: options.host } : {}),
      port: options.port ?? 3000,
      stage: STAGE,
      region: config.region,
      routes,
      loadHandler,
      authorizer: {
        handler: authorizer.handler,
        identityHeader: authorizer.identityHeader,
        cacheTtlSeconds: cacheTtl,
      },
      adminToken,
      functionCredentials,
      binaryMediaTypes,
      limits: {
        ...(options.integrationTimeoutMs ? { integrationTimeoutMs: options.integrationTimeoutMs } : {}),
        ...(options.streamedIntegrationTimeoutMs
          ? { streamedIntegrationTimeoutMs: options.streamedIntegrationTimeoutMs }
          : {}),
      },
      ...(options.onAccess ? { onAccess: options.onAccess } : {}),
    });
    closers.unshift(gateway.close);
    // Handlers are imported on their first call, which cannot come before this synchronous step.
    bindEnvironment(
      config,
      tables,
      handlersDynamodbUrl,
      sagemaker.url,
      gateway.url,
      functionCredentials.secretAccessKey,
      cloudwatch.url,
    );

    const info: LocalInfo = {
      stage: STAGE,
      gatewayUrl: gateway.url,
      sagemakerUrl: sagemaker.url,
      cloudwatchUrl: cloudwatch.url,
      dynamodbUrl: dynamo.url,
      adminToken,
      tenantsTable: tables.tenants,
      limitsTable: tables.limits,
      idempotencyTable: tables.idempotency,
      usageTable: tables.usage,
      endpointsTable: tables.endpoints,
      sharedEndpoints: config.sharedEndpoints.map((e) => e.endpointName),
      demoTenant: await demoTenant(tenantStore, config, previous?.demoTenant),
    };
    await writeLocalInfo(dataDir, info);

    let closing: Promise<void> | undefined;
    return {
      ...info,
      config,
      dataDir,
      gateway,
      sagemaker,
      cloudwatch,
      tenantStore,
      close: () => {
        // Gateway first (drains in-flight calls), then the model emulator, CloudWatch, then DynamoDB.
        closing ??= closeAll(closers);
        return closing;
      },
    };
  } catch (err) {
    await closeAll(closers);
    throw err;
  }
}

async function closeAll(closers: (() => Promise<void>)[]): Promise<void> {
  for (const close of closers) await close();
}

function bindEnvironment(
  config: StageConfig,
  tables: TableNames,
  dynamodbUrl: string,
  sagemakerUrl: string,
  gatewayUrl: string,
  secretAccessKey: string,
  cloudwatchUrl: string,
): void {
  const env: Record<string, string> = {
    AWS_REGION: config.region,
    AWS_ACCESS_KEY_ID: "local",
    AWS_SECRET_ACCESS_KEY: secretAccessKey,
    AWS_ENDPOINT_URL_DYNAMODB: dynamodbUrl,
    AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME: sagemakerUrl,
    AWS_ENDPOINT_URL_CLOUDWATCH: cloudwatchUrl,
    // Admin functions flush the emulator's authorizer cache through the real API Gateway client.
    AWS_ENDPOINT_URL_API_GATEWAY: gatewayUrl,
    [StackEnv.restApiId]: API_ID,
    [StackEnv.apiStage]: STAGE,
    [TenantTable.env]: tables.tenants,
    [LimiterTable.env]: tables.limits,
    [IdempotencyTable.env]: tables.idempotency,
    [UsageTable.env]: tables.usage,
    [EndpointTable.env]: tables.endpoints,
    [STAGE_CONFIG_ENV]: JSON.stringify(config),
    POWERTOOLS_SERVICE_NAME: "atrium",
    POWERTOOLS_METRICS_NAMESPACE: "Atrium",
  };
  const fingerprint = JSON.stringify(env);
  if (boundEnvironment && boundEnvironment !== fingerprint) {
    throw new Error(
      "A platform with other endpoints already ran in this process; start one platform per process.",
    );
  }
  boundEnvironment = fingerprint;
  delete process.env.AWS_PROFILE;
  Object.assign(process.env, env);
}

const handlers = new Map<string, Promise<LambdaHandler>>();

/** "packages/functions/src/chat.handler" → the `handler` export of that file, imported once. */
function loadHandler(handler: string): Promise<LambdaHandler> {
  let loaded = handlers.get(handler);
  if (!loaded) {
    const dot = handler.lastIndexOf(".");
    const file = pathToFileURL(join(REPO_ROOT, `${handler.slice(0, dot)}.ts`)).href;
    const exported = handler.slice(dot + 1);
    loaded = import(file).then((module) => {
      const fn = module[exported];
      if (typeof fn !== "function") throw new Error(`${handler}: no exported function '${exported}'`);
      return fn as LambdaHandler;
    });
    handlers.set(handler, loaded);
  }
  return loaded;
}

/** Reuses the demo tenant and key of an earlier run while its key still resolves; otherwise makes them. */
async function demoTenant(
  store: TenantStore,
  config: StageConfig,
  previous: LocalInfo["demoTenant"] | undefined,
): Promise<LocalInfo["demoTenant"]> {
  if (previous) {
    const key = await store.findKey(hashApiKey(previous.apiKey));
    if (key?.status === "active" && key.tenantId === previous.id) return previous;
  }
  const tier = config.tiers.pro ? "pro" : (Object.keys(config.tiers)[0] as string);
  const tenant = newTenant({ name: "Demo tenant", tier }, config);
  const key = generateApiKey();
  await store.create(tenant, key);
  return { id: tenant.id, apiKey: key.plaintext };
}

export async function readLocalInfo(dataDir: string): Promise<LocalInfo | undefined> {
  try {
    return JSON.parse(await readFile(join(dataDir, "local.json"), "utf8")) as LocalInfo;
  } catch {
    return undefined;
  }
}

async function writeLocalInfo(dataDir: string, info: LocalInfo): Promise<void> {
  const file = join(dataDir, "local.json");
  // It holds the admin token and the demo key: readable by this user only.
  await writeFile(file, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
}
