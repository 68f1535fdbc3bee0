/**
 * The `atrium` CLI against the local platform: run in-process through `main(argv, io)`, and once as
 * a user runs it (`npx atrium`, a child process) to show the binary is wired to the same `main`.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type Platform, REPO_ROOT } from "@atrium/local/platform";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliOutcome, runCli } from "../support/cli";
import { startTestPlatform, stopTestPlatform } from "../support/platform";

const run = promisify(execFile);
let platform: Platform;
let dataDir: string;
let emptyDir: string;

beforeAll(async () => {
  emptyDir = await mkdtemp(join(tmpdir(), "atrium-cli-none-"));
  ({ platform, dataDir } = await startTestPlatform());
});

afterAll(async () => {
  await stopTestPlatform(platform, dataDir);
  await rm(emptyDir, { recursive: true, force: true });
});

function atrium(
  args: string[],
  env: Record<string, string> = { ATRIUM_DATA_DIR: dataDir },
): Promise<CliOutcome> {
  return runCli(args, env);
}

/** `npx atrium ...` from the repository root, with the test's environment minus any ATRIUM_ settings. */
async function npxAtrium(args: string[]): Promise<CliOutcome> {
  const { ATRIUM_URL: _url, ATRIUM_ADMIN_TOKEN: _token, ...inherited } = process.env;
  try {
    const { stdout, stderr } = await run("npx", ["atrium", ...args], {
      cwd: REPO_ROOT,
      env: { ...inherited, ATRIUM_DATA_DIR: dataDir },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function chatStatus(apiKey: string) {
  const response = await fetch(`${platform.gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "llama-3.1-8b-instruct", messages: [{ role: "user", content: "hi" }] }),
  });
  return { status: response.status, route: response.headers.get("x-atrium-route") };
}

describe("npx atrium, the installed binary", () => {
  it("writes to stderr and exits 2 on an unknown command; creates a tenant whose key works", async () => {
    const unknown = await npxAtrium(["tenants", "explode"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stdout).toBe("");
    expect(unknown.stderr).toContain("unknown command 'tenants explode'");
    expect(unknown.stderr).toContain("atrium tenants create");
    const created = await npxAtrium(["tenants", "create", "--name", "Smoke", "--tier", "pro", "--json"]);
    expect(created.code).toBe(0);
    const { tenant, apiKey } = JSON.parse(created.stdout);
    expect(tenant).toMatchObject({ name: "Smoke", tier: "pro" });
    expect(await chatStatus(apiKey)).toEqual({ status: 200, route: "shared" });
  });
});

describe("atrium tenants create", () => {
  it("--json prints the tenant and its key, and the key works at once", async () => {
    const { code, stdout } = await atrium(["tenants", "create", "--name", "Acme", "--tier", "pro", "--json"]);
    expect(code).toBe(0);
    const created = JSON.parse(stdout);
    expect(created).toMatchObject({
      tenant: { id: expect.stringMatching(/^tn-/), tier: "pro" },
      apiKey: expect.any(String),
    });
    expect(await chatStatus(created.apiKey)).toEqual({ status: 200, route: "shared" });
  });

  it("prints a readable summary and says the key is shown once", async () => {
    const { code, stdout } = await atrium(["tenants", "create", "--name", "Beta Corp", "--tier", "free"]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/Created tenant tn-\S+ "Beta Corp" \(tier free\)/);
    expect(stdout).toContain("shown once");
    expect(stdout).toMatch(/atr_[0-9A-Za-z]{40}/);
  });

  it("exits non-zero with the server's reason for bad input", async () => {
    const tier = await atrium(["tenants", "create", "--name", "X", "--tier", "platinum"]);
    expect(tier.code).toBe(1);
    expect(tier.stderr).toContain("unknown tier 'platinum'");

    const hipaa = await atrium([
      "tenants",
      "create",
      "--name",
      "X",
      "--tier",
      "free",
      "--compliance",
      "hipaa",
    ]);
    expect(hipaa.code).toBe(1);
    expect(hipaa.stderr).toContain("hipaa_requires_dedicated");

    const missing = await atrium(["tenants", "create", "--tier", "pro"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("missing --name");
  });
});

describe("atrium endpoints add", () => {
  it("dedicates an endpoint, and the tenant's calls go there", async () => {
    const created = JSON.parse(
      (await atrium(["tenants", "create", "--name", "Silo", "--tier", "enterprise", "--json"])).stdout,
    );
    expect((await chatStatus(created.apiKey)).status).toBe(404);

    const endpointName = `${created.tenant.id}-llama`;
    const added = await atrium([
      "endpoints",
      "add",
      created.tenant.id,
      "--model",
      "llama-3.1-8b-instruct",
      "--endpoint",
      endpointName,
      "--json",
    ]);
    expect(added.code).toBe(0);
    expect(JSON.parse(added.stdout).tenant.endpoints["llama-3.1-8b-instruct"]).toEqual({ endpointName });
    expect(await chatStatus(created.apiKey)).toEqual({ status: 200, route: "dedicated" });
  });

  it("refuses a pool tenant and an unknown tenant", async () => {
    const pool = JSON.parse(
      (await atrium(["tenants", "create", "--name", "P", "--tier", "pro", "--json"])).stdout,
    );
    const refused = await atrium(["endpoints", "add", pool.tenant.id, "--model", "m", "--endpoint", "e1"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("pooled tier");
    const unknown = await atrium(["endpoints", "add", "tn-nobody00000", "--model", "m", "--endpoint", "e2"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("tenant_not_found");
  });
});

describe("atrium, generally", () => {
  it("has help for the tool and for each verb", async () => {
    const overview = await atrium(["--help"]);
    expect(overview.code).toBe(0);
    expect(overview.stdout).toContain("atrium tenants create");
    const verb = await atrium(["endpoints", "add", "--help"]);
    expect(verb.code).toBe(0);
    expect(verb.stdout).toContain("--inference-component");
    expect((await atrium(["tenants", "explode"])).code).toBe(2);
    const prototypeName = await atrium(["constructor"]);
    expect(prototypeName).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("unknown command 'constructor'"),
    });
  });

  it("talks to ATRIUM_URL with ATRIUM_ADMIN_TOKEN, and refuses a wrong token", async () => {
    const ok = await atrium(["tenants", "create", "--name", "Remote", "--tier", "pro", "--json"], {
      ATRIUM_URL: platform.gatewayUrl,
      ATRIUM_ADMIN_TOKEN: platform.adminToken,
    });
    expect(ok.code).toBe(0);
    const wrong = await atrium(["tenants", "create", "--name", "Remote", "--tier", "pro"], {
      ATRIUM_URL: platform.gatewayUrl,
      ATRIUM_ADMIN_TOKEN: "nope",
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("invalid_admin_credentials");
  });

  it("says how to start a platform when none is found", async () => {
    const none = await atrium(["tenants", "create", "--name", "X", "--tier", "pro"], {
      ATRIUM_DATA_DIR: emptyDir,
    });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("npm start");
  });
});
