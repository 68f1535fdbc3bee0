// @vitest-environment node
/**
 * tenantClients against FakeSts, a local HTTP server answering AssumeRole in STS's real Query/XML
 * wire format: a named fake, because STS cannot run here. A second local server (the recorder)
 * answers DynamoDB and SageMaker Runtime and keeps each request's SigV4 credential and session token,
 * so the tests see which identity every call was signed with.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";

const ROLE_ARN = "arn:aws:iam::123456789012:role/dev-atrium-Api-TenantAccessRole";
const CONTAINER_KEY = "AKIACONTAINERKEY";

interface AssumeRoleCall {
  params: URLSearchParams;
  accessKeyId?: string;
}

/** Named fake: STS AssumeRole over the Query protocol, with per-tenant expiry and failure switches. */
class FakeSts {
  readonly calls: AssumeRoleCall[] = [];
  /** Seconds until the credentials it issues expire, per tenant (default one hour). */
  readonly lifetime = new Map<string, number>();
  /** Tenants whose next AssumeRole is refused (AccessDenied), once. */
  readonly refuseOnce = new Set<string>();
  /** Tenants whose AssumeRole calls are taken and never answered. */
  readonly hang = new Set<string>();
  private server?: Server;

  async start(): Promise<string> {
    this.server = createServer(async (req, res) => {
      const params = new URLSearchParams(await body(req));
      const call: AssumeRoleCall = { params };
      this.calls.push(call);
      const tenant = params.get("Tags.member.1.Value") ?? "untagged";
      if (this.hang.has(tenant)) return;
      const requestId = randomBytes(8).toString("hex");
      if (params.get("Action") !== "AssumeRole" || this.refuseOnce.delete(tenant)) {
        res.writeHead(403, { "content-type": "text/xml" });
        res.end(
          `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not allowed to assume ${params.get("RoleArn")}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
        );
        return;
      }
      call.accessKeyId = `ASIA${tenant.replace(/-/g, "").toUpperCase()}${this.calls.length}`;
      const expiration = new Date(Date.now() + (this.lifetime.get(tenant) ?? 3600) * 1000).toISOString();
      res.writeHead(200, { "content-type": "text/xml" });
      res.end(
        `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>${call.accessKeyId}</AccessKeyId><SecretAccessKey>secret-${call.accessKeyId}</SecretAccessKey><SessionToken>token-${call.accessKeyId}</SessionToken><Expiration>${expiration}</Expiration></Credentials><AssumedRoleUser><Arn>${ROLE_ARN.replace(":iam:", ":sts:").replace(":role/", ":assumed-role/")}/${params.get("RoleSessionName")}</Arn><AssumedRoleId>AROAFAKE:${params.get("RoleSessionName")}</AssumedRoleId></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></AssumeRoleResponse>`,
      );
    });
    return listen(this.server);
  }

  callsFor(tenant: string) {
    return this.calls.filter((c) => c.params.get("Tags.member.1.Value") === tenant);
  }

  stop() {
    this.server?.closeAllConnections();
    this.server?.close();
  }
}

interface SignedCall {
  service: "dynamodb" | "sagemaker";
  accessKeyId?: string;
  sessionToken?: string;
}

/** Answers GetItem and InvokeEndpoint minimally, remembering who signed each request. */
class Recorder {
  readonly calls: SignedCall[] = [];
  private server?: Server;

  async start(): Promise<string> {
    this.server = createServer(async (req, res) => {
      await body(req);
      const dynamo = typeof req.headers["x-amz-target"] === "string";
      this.calls.push({
        service: dynamo ? "dynamodb" : "sagemaker",
        accessKeyId: /Credential=([^/]+)\//.exec(req.headers.authorization ?? "")?.[1],
        sessionToken: req.headers["x-amz-security-token"] as string | undefined,
      });
      res.writeHead(200, { "content-type": dynamo ? "application/x-amz-json-1.0" : "application/json" });
      res.end(dynamo ? "{}" : '{"ok":true}');
    });
    return listen(this.server);
  }

  stop() {
    this.server?.close();
  }
}

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function listen(server: Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    ),
  );
}

const sts = new FakeSts();
const recorder = new Recorder();
let tenantClients: typeof import("../src/lib/tenant-clients").tenantClients;
let container: typeof import("../src/lib/clients");

/** One call on each client of a tenant: a GetItem and an InvokeEndpoint. */
async function callBoth(tenantId: string) {
  const { dynamo, sagemaker } = tenantClients(tenantId);
  await dynamo.get({ TableName: "limiter", Key: { pk: `TENANT#${tenantId}#`, sk: "LIMITER#0" } });
  await sagemaker.invokeEndpoint({
    endpointName: "atrium-dev-x",
    body: Buffer.from("{}"),
    contentType: "application/json",
  });
  return recorder.calls.slice(-2);
}

beforeAll(async () => {
  const [stsUrl, recorderUrl] = await Promise.all([sts.start(), recorder.start()]);
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_STS: stsUrl,
    AWS_ENDPOINT_URL_DYNAMODB: recorderUrl,
    AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME: recorderUrl,
    AWS_ACCESS_KEY_ID: CONTAINER_KEY,
    AWS_SECRET_ACCESS_KEY: "container-secret",
    ATRIUM_STAGE_CONFIG: readFileSync("config/local.json", "utf8"),
    ATRIUM_TENANTS_TABLE: "tenants",
    ATRIUM_LIMITER_TABLE: "limiter",
    ATRIUM_USAGE_TABLE: "usage",
    ATRIUM_ENDPOINTS_TABLE: "endpoints",
  });
  delete process.env.AWS_PROFILE;
  delete process.env.AWS_SESSION_TOKEN;
  container = await import("../src/lib/clients");
  ({ tenantClients } = await import("../src/lib/tenant-clients"));
});

afterAll(() => {
  sts.stop();
  recorder.stop();
});

describe("without ATRIUM_TENANT_ROLE_ARN (the local platform)", () => {
  beforeEach(() => {
    delete process.env.ATRIUM_TENANT_ROLE_ARN;
  });

  it("hands out the container's own clients and never calls STS", async () => {
    const clients = tenantClients("tn-local");
    expect(clients.dynamo).toBe(container.documentClient);
    // One SageMaker client for the container, whichever tenant calls.
    expect(clients.sagemaker).toBe(tenantClients("tn-other").sagemaker);
    const calls = await callBoth("tn-local");
    expect(calls.map((c) => c.accessKeyId)).toEqual([CONTAINER_KEY, CONTAINER_KEY]);
    expect(sts.calls).toEqual([]);
  });
});

describe("with ATRIUM_TENANT_ROLE_ARN", () => {
  beforeEach(() => {
    process.env.ATRIUM_TENANT_ROLE_ARN = ROLE_ARN;
  });

  it("refuses anything that is not a tenant id, before any STS call", () => {
    const before = sts.calls.length;
    for (const id of ["", "t", "TN-UPPER", "tn-a#", "TENANT#tn-a", "tn-*", "tn-a?", "../tn-a", "-tn-a"]) {
      expect(() => tenantClients(id), JSON.stringify(id)).toThrow(/Not a tenant id/);
    }
    expect(sts.calls.length).toBe(before);
  });

  it("assumes the tenant role tagged TenantId=<id> and signs both clients' calls with that session", async () => {
    const calls = await callBoth("tn-alpha");
    const [assume] = sts.callsFor("tn-alpha");
    expect(sts.callsFor("tn-alpha")).toHaveLength(1);
    expect(Object.fromEntries(assume?.params ?? [])).toMatchObject({
      Action: "AssumeRole",
      RoleArn: ROLE_ARN,
      RoleSessionName: "atrium-tn-alpha",
      DurationSeconds: "3600",
      "Tags.member.1.Key": "TenantId",
      "Tags.member.1.Value": "tn-alpha",
    });
    expect([...(assume?.params.keys() ?? [])].filter((k) => k.startsWith("Tags."))).toHaveLength(2);
    expect(calls.map((c) => c.service)).toEqual(["dynamodb", "sagemaker"]);
    for (const call of calls) {
      expect(call.accessKeyId).toBe(assume?.accessKeyId);
      expect(call.sessionToken).toBe(`token-${assume?.accessKeyId}`);
    }
  });

  it("caches the clients per tenant and keeps tenants' sessions apart", async () => {
    expect(tenantClients("tn-alpha")).toBe(tenantClients("tn-alpha"));
    expect(tenantClients("tn-beta")).not.toBe(tenantClients("tn-alpha"));
    const alpha = await callBoth("tn-alpha");
    const beta = await callBoth("tn-beta");
    await callBoth("tn-beta");
    expect(sts.callsFor("tn-alpha")).toHaveLength(1);
    expect(sts.callsFor("tn-beta")).toHaveLength(1);
    const [alphaKey, betaKey] = [
      sts.callsFor("tn-alpha")[0]?.accessKeyId,
      sts.callsFor("tn-beta")[0]?.accessKeyId,
    ];
    expect(alphaKey).not.toBe(betaKey);
    expect(alpha.map((c) => c.accessKeyId)).toEqual([alphaKey, alphaKey]);
    expect(beta.map((c) => c.accessKeyId)).toEqual([betaKey, betaKey]);
  });

  it("shares one AssumeRole between concurrent first calls of a tenant", async () => {
    const { dynamo } = tenantClients("tn-crowd");
    await Promise.all(
      Array.from({ length: 5 }, () =>
        dynamo.get({ TableName: "tenants", Key: { pk: "TENANT#tn-crowd#", sk: "PROFILE" } }),
      ),
    );
    expect(sts.callsFor("tn-crowd")).toHaveLength(1);
  });

  it("renews a session before it expires", async () => {
    // Two minutes left is inside the five-minute renewal margin: every call needs a fresh session.
    sts.lifetime.set("tn-gamma", 120);
    const first = await callBoth("tn-gamma");
    const second = await callBoth("tn-gamma");
    const keys = sts.callsFor("tn-gamma").map((c) => c.accessKeyId);
    expect(keys.length).toBeGreaterThanOrEqual(2);
    expect(new Set(keys).size).toBe(keys.length);
    expect(second[1]?.accessKeyId).toBe(keys.at(-1));
    expect(first[0]?.accessKeyId).not.toBe(second[1]?.accessKeyId);
  });

  it("gives up on an STS that never answers after two attempts, and tries afresh on the next call", async () => {
    sts.hang.add("tn-epsilon");
    const err = await callBoth("tn-epsilon").catch((e: unknown) => e);
    expect(err).toMatchObject({ name: "TimeoutError" });
    expect(sts.callsFor("tn-epsilon")).toHaveLength(2);

    sts.hang.delete("tn-epsilon");
    const calls = await callBoth("tn-epsilon");
    const granted = sts.callsFor("tn-epsilon").find((c) => c.accessKeyId);
    expect(calls.map((c) => c.accessKeyId)).toEqual([granted?.accessKeyId, granted?.accessKeyId]);
  });

  it("retries after a refused AssumeRole instead of remembering the failure", async () => {
    sts.refuseOnce.add("tn-delta");
    await expect(callBoth("tn-delta")).rejects.toThrow(/Not allowed to assume/);
    const calls = await callBoth("tn-delta");
    const granted = sts.callsFor("tn-delta").filter((c) => c.accessKeyId);
    expect(sts.callsFor("tn-delta")).toHaveLength(2);
    expect(calls.map((c) => c.accessKeyId)).toEqual([granted[0]?.accessKeyId, granted[0]?.accessKeyId]);
  });
});

describe("Atrium's STS client and the SDK's, against the same STS answers", () => {
  const input = (tenantId: string) => ({
    roleArn: ROLE_ARN,
    roleSessionName: `atrium-${tenantId}`,
    durationSeconds: 3600,
    tags: [{ key: "TenantId", value: tenantId }],
  });
  const sdk = () =>
    new STSClient({
      endpoint: process.env.AWS_ENDPOINT_URL_STS,
      region: "eu-west-1",
      credentials: { accessKeyId: CONTAINER_KEY, secretAccessKey: "container-secret" },
      maxAttempts: 1,
    });
  const sdkCall = (tenantId: string) =>
    sdk().send(
      new AssumeRoleCommand({
        RoleArn: ROLE_ARN,
        RoleSessionName: `atrium-${tenantId}`,
        DurationSeconds: 3600,
        Tags: [{ Key: "TenantId", Value: tenantId }],
      }),
    );

  it("send the same AssumeRole and read the same credentials from its answer", async () => {
    const { StsClient } = await import("../src/lib/sts");
    const ours = await new StsClient({
      connectionTimeout: 500,
      requestTimeout: 1000,
      maxAttempts: 1,
    }).assumeRole(input("tn-parity"));
    const theirs = (await sdkCall("tn-parity")).Credentials;
    const [mine, sdks] = sts.callsFor("tn-parity");
    expect(Object.fromEntries(mine?.params ?? [])).toEqual(Object.fromEntries(sdks?.params ?? []));
    // The fake issues a new key per call: compare each answer with what the fake sent for that call.
    expect(ours).toEqual({
      accessKeyId: mine?.accessKeyId,
      secretAccessKey: `secret-${mine?.accessKeyId}`,
      sessionToken: `token-${mine?.accessKeyId}`,
      expiration: expect.any(Date),
    });
    expect(theirs).toMatchObject({
      AccessKeyId: sdks?.accessKeyId,
      SecretAccessKey: `secret-${sdks?.accessKeyId}`,
      SessionToken: `token-${sdks?.accessKeyId}`,
    });
    expect(Math.abs(ours.expiration.getTime() - (theirs?.Expiration?.getTime() ?? 0))).toBeLessThan(5_000);
  });

  it("read a refusal as the same error", async () => {
    const { StsClient } = await import("../src/lib/sts");
    sts.refuseOnce.add("tn-refused");
    const ours = await new StsClient({ connectionTimeout: 500, requestTimeout: 1000, maxAttempts: 1 })
      .assumeRole(input("tn-refused"))
      .then(
        () => new Error("AssumeRole was not refused"),
        (err: unknown) => err as Error,
      );
    sts.refuseOnce.add("tn-refused");
    const theirs = (await sdkCall("tn-refused").catch((err: unknown) => err)) as Error;
    expect(ours).toMatchObject({ name: theirs.name, message: theirs.message, status: 403 });
    expect(ours.name).toBe("AccessDenied");
  });
});
