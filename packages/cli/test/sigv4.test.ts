/**
 * The CLI's SigV4 signing of admin calls to a deployed stage, checked offline. IAM cannot run here,
 * so a tiny local HTTP server stands in for API Gateway's IAM check (FAKE_IAM below): it checks the
 * Authorization header's shape and credential scope, and recomputes the signature from the request
 * it actually received, with the same static test credentials the CLI was given.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Sha256 } from "@aws-crypto/sha256-js";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { regionFromUrl, signedHeaders } from "../src/sigv4";

const run = promisify(execFile);
const BIN = fileURLToPath(new URL("../bin/atrium.js", import.meta.url));
const CREDENTIALS = {
  accessKeyId: "AKIDEXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
  sessionToken: "session-token-example",
};
const REGION = "eu-central-1";

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
  verdict: string;
}

const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z-]+)\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/;

/** FAKE_IAM: what API Gateway's IAM authorisation checks of a signature, minus the IAM policy. */
async function verify(method: string, rawUrl: string, headers: IncomingMessage["headers"], body: string) {
  const match = AUTHORIZATION.exec(String(headers.authorization ?? ""));
  if (!match) return "malformed Authorization";
  const [, accessKeyId, day, region, service, signedNames, signature] = match;
  if (accessKeyId !== CREDENTIALS.accessKeyId) return "wrong access key";
  if (region !== REGION || service !== "execute-api") return `wrong scope ${region}/${service}`;
  const amzDate = String(headers["x-amz-date"] ?? "");
  if (!/^\d{8}T\d{6}Z$/.test(amzDate) || amzDate.slice(0, 8) !== day)
    return "x-amz-date does not match the scope";
  const names = (signedNames as string).split(";");
  for (const required of ["host", "x-amz-date", "x-amz-security-token"]) {
    if (!names.includes(required)) return `${required} is not signed`;
  }
  if (headers["x-amz-security-token"] !== CREDENTIALS.sessionToken) return "wrong session token";
  // A signed payload hash is only as good as its match with the bytes that arrived.
  const payloadHash = headers["x-amz-content-sha256"];
  if (payloadHash !== undefined && payloadHash !== createHash("sha256").update(body).digest("hex")) {
    return "payload hash mismatch";
  }

  const url = new URL(rawUrl, `http://${headers.host}`);
  const query: Record<string, string> = Object.fromEntries(url.searchParams);
  const signedValues = Object.fromEntries(names.map((name) => [name, String(headers[name] ?? "")]));
  const request = new HttpRequest({
    method,
    protocol: "http:",
    hostname: url.hostname,
    port: Number(url.port),
    path: url.pathname,
    query,
    headers: signedValues,
    ...(body ? { body } : {}),
  });
  const signer = new SignatureV4({
    service: "execute-api",
    region: REGION,
    credentials: CREDENTIALS,
    sha256: Sha256,
  });
  const expected = await signer.sign(request, {
    signingDate: new Date(
      `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
    ),
  });
  const recomputed = /Signature=([0-9a-f]{64})$/.exec(String(expected.headers.authorization))?.[1];
  return recomputed === signature ? "ok" : "signature mismatch";
}

let server: Server;
let baseUrl: string;
const received: Received[] = [];

beforeAll(async () => {
  server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    const verdict = await verify(req.method ?? "", req.url ?? "", req.headers, body);
    received.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body, verdict });
    if (verdict !== "ok") {
      res.writeHead(403, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: verdict, code: "invalid_admin_credentials" } }));
      return;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        tenants: [],
        entries: [],
        tenant: { id: "tn-abcdefghijkl" },
        changes: {},
        removed: { endpointName: "e" },
        propagation: { authorizerCacheFlushed: true, worstCaseSeconds: 0 },
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** The CLI with only the given environment (and no AWS config files), as in a clean CI job. */
async function atrium(args: string[], env: Record<string, string>) {
  const clean = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
    AWS_CONFIG_FILE: "/nonexistent/atrium-test-config",
    AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/atrium-test-credentials",
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  };
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env: { ...clean, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const signing = () => ({
  ATRIUM_URL: `${baseUrl}/prod`,
  AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
  AWS_SESSION_TOKEN: CREDENTIALS.sessionToken,
  AWS_REGION: REGION,
});

describe("regionFromUrl", () => {
  it("reads the region of an execute-api URL, and nothing from other hosts", () => {
    expect(regionFromUrl("https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/prod")).toBe("eu-west-1");
    expect(regionFromUrl("https://a1b2c3d4e5.execute-api.us-gov-west-1.amazonaws.com/")).toBe(
      "us-gov-west-1",
    );
    expect(regionFromUrl("https://api.example.com/prod")).toBeUndefined();
    expect(regionFromUrl("http://127.0.0.1:3000")).toBeUndefined();
  });
});

describe("signed admin calls (FAKE_IAM server)", () => {
  it("sign GET, PATCH with a body, DELETE with an encoded path segment, and a query string", async () => {
    received.length = 0;
    const calls = [
      ["tenants", "list", "--json"],
      ["tenants", "update", "tn-abcdefghijkl", "--tier", "pro", "--json"],
      ["endpoints", "remove", "tn-abcdefghijkl", "--model", "org/model:v1", "--json"],
      ["audit", "tn-abcdefghijkl", "--limit", "5", "--json"],
    ];
    for (const args of calls) {
      const outcome = await atrium(args, signing());
      expect({ args, code: outcome.code, stderr: outcome.stderr }).toEqual({ args, code: 0, stderr: "" });
    }
    expect(received.map((r) => [r.method, r.url, r.verdict])).toEqual([
      ["GET", "/prod/admin/tenants", "ok"],
      ["PATCH", "/prod/admin/tenants/tn-abcdefghijkl", "ok"],
      ["DELETE", "/prod/admin/tenants/tn-abcdefghijkl/endpoints/org%2Fmodel%3Av1", "ok"],
      ["GET", "/prod/admin/tenants/tn-abcdefghijkl/audit?limit=5", "ok"],
    ]);
    expect(received[1]?.body).toBe('{"tier":"pro"}');
    expect(received.every((r) => !String(r.headers.authorization).startsWith("Bearer"))).toBe(true);
  });

  it("a signature over other bytes than the ones sent does not verify (the check is real)", async () => {
    const url = new URL(`${baseUrl}/prod/admin/tenants/tn-abcdefghijkl`);
    const auth = { kind: "sigv4" as const, region: REGION, credentials: async () => CREDENTIALS };
    const headers = await signedHeaders(
      auth,
      "PATCH",
      url,
      { "content-type": "application/json" },
      '{"tier":"pro"}',
    );
    const sent = { ...headers, host: url.host };
    expect(await verify("PATCH", url.pathname, sent, '{"tier":"pro"}')).toBe("ok");
    expect(await verify("PATCH", url.pathname, sent, '{"tier":"enterprise"}')).not.toBe("ok");
    expect(
      await verify("PATCH", url.pathname, { ...sent, "x-amz-date": "20200101T000000Z" }, '{"tier":"pro"}'),
    ).not.toBe("ok");
    expect(await verify("PATCH", "/prod/admin/tenants/tn-other0000000", sent, '{"tier":"pro"}')).toBe(
      "signature mismatch",
    );
  });

  it("asks for AWS_REGION when neither it nor the URL names a region", async () => {
    const { AWS_REGION: _region, ...env } = signing();
    const noRegion = await atrium(["tenants", "list"], env);
    expect(noRegion.code).toBe(2);
    expect(noRegion.stderr).toContain("AWS_REGION");
  });

  it("says how to get credentials when the default chain has none", async () => {
    const outcome = await atrium(["tenants", "list"], { ATRIUM_URL: `${baseUrl}/prod`, AWS_REGION: REGION });
    expect(outcome.code).toBe(1);
    expect(outcome.stderr).toContain("No AWS credentials");
    expect(outcome.stderr).toContain("ATRIUM_ADMIN_TOKEN");
  });

  it("sends ATRIUM_ADMIN_TOKEN instead of signing when it is set", async () => {
    received.length = 0;
    const outcome = await atrium(["tenants", "list"], { ...signing(), ATRIUM_ADMIN_TOKEN: "token-1" });
    expect(outcome.code).toBe(1);
    expect(received[0]?.headers.authorization).toBe("Bearer token-1");
  });
});
