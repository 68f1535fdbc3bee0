/**
 * `atrium local fault` against the local platform (issue 11, item 6): conditions set with the CLI
 * (spawned as a person runs it, and in-process), then met by tenants' calls through the gateway;
 * capacity refuses the call beyond it while the others are held; clearing restores; the control
 * route refuses callers without the admin token.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { type Platform, REPO_ROOT } from "@atrium/local/platform";
import { beforeAll, describe, expect, it } from "vitest";
import { type CliOutcome, runCli } from "../support/cli";
import type { GatedModel } from "../support/gated-model";
import { GATED_ENDPOINT, GATED_MODEL, useGatedPlatform } from "../support/gated-platform";
import type { Json } from "../support/http";
import { onboard, postChat, type TestTenant } from "../support/tenant-calls";

const run = promisify(execFile);
const MODEL = "llama-3.1-8b-instruct";
const ENDPOINT = "atrium-shared-llama-8b";

let platform: Platform;
let gated: GatedModel;
let tenant: TestTenant;

useGatedPlatform((started) => {
  ({ platform, gated } = started);
});

beforeAll(async () => {
  tenant = await onboard(platform);
});

const atrium = (args: string[], env: Record<string, string> = {}): Promise<CliOutcome> =>
  runCli(["local", "fault", ...args], { ATRIUM_DATA_DIR: platform.dataDir, ...env });

/** `npx atrium local fault ...` from the repository root, as a person runs it. */
async function npxAtrium(args: string[]): Promise<CliOutcome> {
  const { ATRIUM_URL: _url, ATRIUM_ADMIN_TOKEN: _token, ...inherited } = process.env;
  try {
    const { stdout, stderr } = await run("npx", ["atrium", "local", "fault", ...args], {
      cwd: REPO_ROOT,
      env: { ...inherited, ATRIUM_DATA_DIR: platform.dataDir },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function chat(model = MODEL): Promise<{ status: number; body: Json }> {
  const response = await postChat(platform, tenant.apiKey, {
    model,
    messages: [{ role: "user", content: "Hello" }],
    max_tokens: 16,
  });
  return { status: response.status, body: await response.json() };
}

async function inFlightOf(endpointName: string): Promise<number> {
  const listed = await atrium(["list", endpointName, "--json"]);
  expect(listed.code).toBe(0);
  return JSON.parse(listed.stdout).inFlight;
}

describe("atrium local fault", () => {
  it("sets an error the gateway's calls then meet, lists it, and clear restores the endpoint", async () => {
    expect((await chat()).status).toBe(200);

    const set = await npxAtrium(["set", ENDPOINT, "--error", "ModelError", "--json"]);
    expect(set.code).toBe(0);
    expect(JSON.parse(set.stdout)).toEqual({
      endpointName: ENDPOINT,
      conditions: { errorRate: 1, error: "ModelError" },
      inFlight: 0,
    });
    const failed = await chat();
    expect(failed.status).toBe(502);
    expect(failed.body.error.code).toBe("model_error");

    const listed = await npxAtrium(["list"]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^ENDPOINT\s+IN FLIGHT\s+CAPACITY\s+LATENCY\s+ERRORS\s+STREAM$/m);
    expect(listed.stdout).toMatch(new RegExp(`^${ENDPOINT}\\s+0\\s+-\\s+-\\s+100% ModelError\\s+-$`, "m"));

    const cleared = await atrium(["clear", ENDPOINT]);
    expect(cleared.code).toBe(0);
    expect(cleared.stdout).toContain(`Endpoint ${ENDPOINT}: no conditions`);
    expect((await chat()).status).toBe(200);
    expect((await atrium(["list"])).stdout).toContain("No endpoint has conditions or calls in flight");
  });

  it("slows calls by the latency set (at least that long) and they still succeed", async () => {
    const set = await atrium(["set", ENDPOINT, "--latency-ms", "400"]);
    expect(set.code).toBe(0);
    expect(set.stdout).toContain("latency 400 ms");
    try {
      const started = performance.now();
      expect((await chat()).status).toBe(200);
      expect(performance.now() - started).toBeGreaterThanOrEqual(399);
    } finally {
      await atrium(["clear"]);
    }
  });

  it("with capacity 1, refuses a second call while the first is held, and takes the next once it ends", async () => {
    const set = await atrium(["set", GATED_ENDPOINT, "--capacity", "1"]);
    expect(set.code).toBe(0);
    expect(set.stdout).toContain("at most 1 calls in flight");
    // The role event and one token, then held until released.
    const gate = gated.holdAfter(2);
    try {
      const held = await postChat(platform, tenant.apiKey, {
        model: GATED_MODEL,
        messages: [{ role: "user", content: "Hold this one" }],
        max_tokens: 16,
        stream: true,
      });
      expect(held.status).toBe(200);
      await gate.reached;
      expect(await inFlightOf(GATED_ENDPOINT)).toBe(1);

      // SageMaker's ThrottlingException at the endpoint, as the gateway maps it.
      const refused = await chat(GATED_MODEL);
      expect(refused.status).toBe(429);
      expect(refused.body.error.code).toBe("endpoint_throttled");
      // Another endpoint is not affected.
      expect((await chat()).status).toBe(200);

      gate.release();
      expect(await held.text()).toContain("[DONE]");
      await expect.poll(() => inFlightOf(GATED_ENDPOINT), { interval: 20 }).toBe(0);
      expect((await chat(GATED_MODEL)).status).toBe(200);
    } finally {
      gate.release();
      await atrium(["clear", GATED_ENDPOINT]);
    }
  });

  it("says what is wrong: an unknown endpoint, bad numbers, no condition, a deployed stage", async () => {
    const unknown = await atrium(["set", "no-such-endpoint", "--capacity", "2"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("No endpoint named 'no-such-endpoint'");

    const rate = await atrium(["set", ENDPOINT, "--error-rate", "1.5"]);
    expect(rate.code).toBe(2);
    expect(rate.stderr).toContain("--error-rate must be a number from 0 to 1");
    const latency = await atrium(["set", ENDPOINT, "--latency-ms", "soon"]);
    expect(latency.code).toBe(2);
    expect(latency.stderr).toContain("--latency-ms: a number, not 'soon'");
    const error = await atrium(["set", ENDPOINT, "--error", "Gremlins"]);
    expect(error.code).toBe(2);
    expect(error.stderr).toContain("--error must be one of ModelError, ThrottlingException");
    const none = await atrium(["set", ENDPOINT]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("give at least one condition");

    const deployed = await atrium(["list"], { ATRIUM_URL: "https://api.example.com/prod" });
    expect(deployed.code).toBe(2);
    expect(deployed.stderr).toContain("works only against the local platform");

    expect(JSON.parse((await atrium(["list", "--json"])).stdout)).toEqual({ endpoints: [] });
  });

  it("refuses the control route to a caller without the admin token", async () => {
    const put = (headers: Record<string, string>) =>
      fetch(`${platform.sagemakerUrl}/_atrium/faults/${ENDPOINT}`, {
        method: "PUT",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ error: "InternalFailure" }),
      });
    const anonymous = await put({});
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as Json).error.code).toBe("missing_admin_credentials");
    const tenantKey = await put({ authorization: `Bearer ${tenant.apiKey}` });
    expect(tenantKey.status).toBe(403);
    expect(((await tenantKey.json()) as Json).error.code).toBe("invalid_admin_credentials");
    expect((await chat()).status).toBe(200);
  });
});
