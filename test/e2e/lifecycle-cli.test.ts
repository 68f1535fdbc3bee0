/**
 * Every lifecycle verb of the `atrium` CLI (in-process, through `main(argv, io)`) against the local
 * platform, and the audit trail they leave: exactly one entry per verb that changes something.
 * test/e2e/cli.test.ts runs the installed binary itself.
 */
import type { AuditEntry } from "@atrium/core/audit";
import type { Platform } from "@atrium/local/platform";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliOutcome, runCli } from "../support/cli";
import { startTestPlatform, stopTestPlatform } from "../support/platform";

const LLAMA = "llama-3.1-8b-instruct";
const MISTRAL = "mistral-7b-instruct";
let platform: Platform;
let dataDir: string;

beforeAll(async () => {
  ({ platform, dataDir } = await startTestPlatform());
});

afterAll(async () => {
  await stopTestPlatform(platform, dataDir);
});

function atrium(...args: string[]): Promise<CliOutcome> {
  return runCli(args, { ATRIUM_DATA_DIR: dataDir });
}

/** Runs a verb with --json, expecting success, and returns the parsed output. */
async function atriumJson(...args: string[]) {
  const outcome = await atrium(...args, "--json");
  expect(outcome, outcome.stderr).toMatchObject({ code: 0 });
  return JSON.parse(outcome.stdout);
}

/** One chat call's status. */
async function chat(apiKey: string, model = LLAMA): Promise<number> {
  const response = await fetch(`${platform.gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 8 }),
  });
  await response.body?.cancel();
  return response.status;
}

const VERBS = [
  ["tenants", "create"],
  ["tenants", "list"],
  ["tenants", "get"],
  ["tenants", "update"],
  ["tenants", "suspend"],
  ["tenants", "resume"],
  ["tenants", "delete"],
  ["keys", "create"],
  ["keys", "list"],
  ["keys", "rotate"],
  ["keys", "revoke"],
  ["endpoints", "add"],
  ["endpoints", "list"],
  ["endpoints", "remove"],
  ["audit"],
];

describe("every verb", () => {
  it("has --help with its usage and exit status, and is listed by atrium --help", async () => {
    const overview = await atrium("--help");
    for (const verb of VERBS) {
      expect(overview.stdout).toContain(`atrium ${verb.join(" ")}`);
      const help = await atrium(...verb, "--help");
      expect(help.code).toBe(0);
      expect(help.stdout).toContain(`Usage: atrium ${verb.join(" ")}`);
      expect(help.stdout).toContain("--json");
      expect(help.stdout).toContain("2 usage error");
    }
  });

  it("exits 2 on usage errors, before calling the platform", async () => {
    const usage: string[][] = [
      ["tenants", "get"],
      ["keys", "rotate", "tn-abcdefghijkl", "key-abcdefghijkl"],
      ["keys", "rotate", "tn-abcdefghijkl", "key-abcdefghijkl", "--grace", "soon"],
      ["tenants", "update", "tn-abcdefghijkl"],
      ["tenants", "update", "tn-abcdefghijkl", "--rpm", "fast"],
      ["tenants", "update", "tn-abcdefghijkl", "--model", LLAMA, "--clear-models"],
      ["tenants", "create", "--name", "X", "--tier", "pro", "--rpm", "default"],
      ["tenants", "list", "--colour"],
      ["audit", "tn-abcdefghijkl", "extra"],
      ["keys", "explode"],
    ];
    for (const args of usage) {
      const outcome = await atrium(...args);
      expect({ args, code: outcome.code }).toEqual({ args, code: 2 });
      expect(outcome.stdout).toBe("");
    }
  });

  it("exits 1 with the platform's reason when refused", async () => {
    const refused: [string[], string][] = [
      [["tenants", "get", "tn-nobody000000"], "tenant_not_found"],
      [["tenants", "get", "NOT_AN_ID"], "invalid_tenant_id"],
      [
        ["tenants", "create", "--name", "Clinic", "--tier", "pro", "--compliance", "hipaa"],
        "hipaa_requires_dedicated",
      ],
      [["tenants", "create", "--name", "X", "--tier", "pro", "--model", "gpt-17"], "unknown_model"],
      [["keys", "list", "tn-nobody000000"], "tenant_not_found"],
      [["audit", "tn-nobody000000"], "tenant_not_found"],
    ];
    for (const [args, code] of refused) {
      const outcome = await atrium(...args);
      expect({ args, code: outcome.code }).toEqual({ args, code: 1 });
      expect(outcome.stderr).toContain(code);
    }
  });
});

describe("a tenant's whole life through the CLI", () => {
  let tenantId: string;
  let firstKey: { apiKey: string; keyId: string };
  /** The audit action each changing verb must leave, in order. */
  const expected: string[] = [];

  it("tenants create: limits map to overrides, and the first call succeeds at once", async () => {
    const started = performance.now();
    const created = await atriumJson(
      "tenants",
      "create",
      "--name",
      "Lifecycle Ltd",
      "--tier",
      "business",
      "--rpm",
      "120",
      "--tpm",
      "50000",
      "--concurrency",
      "4",
      "--monthly-tokens",
      "900000",
      "--burst",
      "30",
      "--region",
      "eu-west-1",
    );
    expect(await chat(created.apiKey)).toBe(200);
    console.info(
      `onboarding via the CLI: create → first successful call ${(performance.now() - started).toFixed(0)} ms`,
    );
    expected.push("tenant.create");
    tenantId = created.tenant.id;
    firstKey = { apiKey: created.apiKey, keyId: created.key.keyId };
    expect(created.tenant).toMatchObject({
      tier: "business",
      regions: ["eu-west-1"],
      limits: {
        requestsPerMinute: 120,
        tokensPerMinute: 50000,
        concurrency: 4,
        monthlyTokens: 900000,
        burst: 30,
      },
    });
  });

  it("tenants list and get show it, as tables and as JSON", async () => {
    const listed = await atrium("tenants", "list");
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^ID\s+NAME\s+TIER\s+STATUS/);
    expect(listed.stdout).toMatch(new RegExp(`${tenantId}\\s+Lifecycle Ltd\\s+business\\s+active`));
    const page = await atriumJson("tenants", "list", "--limit", "1");
    expect(page.tenants).toHaveLength(1);
    expect(page.nextCursor).toEqual(expect.any(String));
    const next = await atriumJson("tenants", "list", "--limit", "1", "--cursor", page.nextCursor);
    expect(next.tenants[0].id).not.toBe(page.tenants[0].id);

    const shown = await atrium("tenants", "get", tenantId);
    expect(shown.stdout).toMatch(/tier\s+business/);
    expect(shown.stdout).toContain('"requestsPerMinute":120');
    expect((await atriumJson("tenants", "get", tenantId)).tenant.id).toBe(tenantId);
  });

  it("tenants update: tier, allowed models, limits; the change shows in the next call", async () => {
    const updated = await atriumJson(
      "tenants",
      "update",
      tenantId,
      "--model",
      MISTRAL,
      "--rpm",
      "default",
      "--tpm",
      "60000",
    );
    expected.push("tenant.update");
    expect(updated.changes).toEqual({
      models: { to: [MISTRAL] },
      limits: {
        from: {
          requestsPerMinute: 120,
          tokensPerMinute: 50000,
          concurrency: 4,
          monthlyTokens: 900000,
          burst: 30,
        },
        to: { tokensPerMinute: 60000, concurrency: 4, monthlyTokens: 900000, burst: 30 },
      },
    });
    expect(await chat(firstKey.apiKey, LLAMA)).toBe(404);
    expect(await chat(firstKey.apiKey, MISTRAL)).toBe(200);

    const human = await atrium("tenants", "update", tenantId, "--clear-models", "--tier", "enterprise");
    expected.push("tenant.update");
    expect(human.stdout).toContain("tier: business -> enterprise");
    expect(await chat(firstKey.apiKey, MISTRAL)).toBe(404);

    const noop = await atrium("tenants", "update", tenantId, "--tier", "enterprise");
    expect(noop.stdout).toContain("nothing changed");

    const refused = await atrium("tenants", "update", tenantId, "--tier", "free", "--compliance", "hipaa");
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("hipaa_requires_dedicated");
  });

  it("endpoints add, list and remove for a silo tenant", async () => {
    const endpointName = `${tenantId}-llama`;
    const added = await atrium("endpoints", "add", tenantId, "--model", LLAMA, "--endpoint", endpointName);
    expected.push("endpoint.add");
    expect(added.code).toBe(0);
    expect(await chat(firstKey.apiKey, LLAMA)).toBe(200);
    const listed = await atrium("endpoints", "list", tenantId);
    expect(listed.stdout).toMatch(new RegExp(`${LLAMA}\\s+${endpointName}\\s+eu-west-1`));
    expect((await atriumJson("endpoints", "list", tenantId)).endpoints).toEqual([
      { model: LLAMA, endpointName, region: "eu-west-1" },
    ]);
    const removed = await atrium("endpoints", "remove", tenantId, "--model", LLAMA);
    expected.push("endpoint.remove");
    expect(removed.stdout).toContain(`no longer goes to ${endpointName}`);
    expect(await chat(firstKey.apiKey, LLAMA)).toBe(404);
    expect((await atrium("endpoints", "remove", tenantId, "--model", LLAMA)).code).toBe(1);
    await atrium("endpoints", "add", tenantId, "--model", LLAMA, "--endpoint", endpointName);
    expected.push("endpoint.add");
  });

  it("keys create, list, rotate and revoke; list never shows a key", async () => {
    const second = await atriumJson("keys", "create", tenantId);
    expected.push("key.create");
    expect(second.apiKey).toMatch(/^atr_[0-9A-Za-z]{40}$/);
    expect(await chat(second.apiKey)).toBe(200);

    const rotated = await atriumJson("keys", "rotate", tenantId, firstKey.keyId, "--grace", "24h");
    expected.push("key.rotate");
    expect(Date.parse(rotated.rotated.expiresAt) - Date.now()).toBeGreaterThan(23.9 * 3600_000);
    expect(await chat(firstKey.apiKey)).toBe(200);
    expect(await chat(rotated.apiKey)).toBe(200);

    const revoked = await atrium("keys", "revoke", tenantId, second.key.keyId);
    expected.push("key.revoke");
    expect(revoked.stdout).toContain("In effect from the next call.");
    expect(await chat(second.apiKey)).toBe(401);

    const listed = await atrium("keys", "list", tenantId);
    expect(listed.stdout).toMatch(/^KEY ID\s+HINT\s+STATE\s+CREATED\s+LAST USED\s+ENDS/);
    expect(listed.stdout).toMatch(new RegExp(`${firstKey.keyId}\\s+atr_\\S+\\s+expiring`));
    expect(listed.stdout).toMatch(new RegExp(`${second.key.keyId}\\s+atr_\\S+\\s+revoked`));
    const keys = (await atriumJson("keys", "list", tenantId)).keys;
    expect(keys.map((k: { state: string }) => k.state)).toEqual(["expiring", "revoked", "active"]);
    expect(keys.every((k: { lastUsedAt: string | null }) => k.lastUsedAt !== null)).toBe(true);
    for (const secret of [firstKey.apiKey, second.apiKey, rotated.apiKey]) {
      expect(listed.stdout).not.toContain(secret);
      expect(JSON.stringify(keys)).not.toContain(secret);
    }
  });

  it("tenants suspend and resume", async () => {
    const suspended = await atrium("tenants", "suspend", tenantId);
    expected.push("tenant.suspend");
    expect(suspended.stdout).toContain("suspended");
    expect((await atriumJson("tenants", "get", tenantId)).tenant.status).toBe("suspended");
    expect(await chat(firstKey.apiKey)).toBe(403);
    expect((await atrium("tenants", "suspend", tenantId)).code).toBe(1);
    await atriumJson("tenants", "resume", tenantId);
    expected.push("tenant.resume");
    expect(await chat(firstKey.apiKey)).toBe(200);
  });

  it("audit: exactly one entry per changing verb, in order, with actor, target and changes", async () => {
    const trail = (await atriumJson("audit", tenantId)).entries as AuditEntry[];
    expect(trail.map((e) => e.action)).toEqual(expected);
    expect(trail.every((e) => e.actor === "local-admin" && e.tenantId === tenantId)).toBe(true);
    const byAction = (action: string) => trail.find((e) => e.action === action);
    expect(byAction("tenant.suspend")).toMatchObject({
      target: tenantId,
      changes: { status: { from: "active", to: "suspended" } },
    });
    expect(byAction("key.rotate")).toMatchObject({
      target: firstKey.keyId,
      changes: { replacedBy: { to: expect.any(String) } },
    });
    expect(byAction("endpoint.remove")).toMatchObject({ target: LLAMA });
    expect(new Set(trail.map((e) => e.id)).size).toBe(trail.length);
    expect([...trail.map((e) => e.at)].sort()).toEqual(trail.map((e) => e.at));

    const table = await atrium("audit", tenantId);
    expect(table.stdout).toMatch(/^TIME\s+ACTOR\s+ACTION\s+TARGET\s+CHANGES/);
    expect(table.stdout).toContain("status: active -> suspended");
    const page = await atriumJson("audit", tenantId, "--limit", "2");
    expect(page.entries).toHaveLength(2);
    expect(page.nextCursor).toEqual(expect.any(String));
  });

  it("tenants delete, then delete --erase: only the erase record is left", async () => {
    const deleted = await atrium("tenants", "delete", tenantId);
    expected.push("tenant.delete");
    // The rotated key (in its grace period) and its replacement; the third was revoked already.
    expect(deleted.stdout).toContain("2 keys revoked");
    expect(await chat(firstKey.apiKey)).toBe(401);
    const trail = (await atriumJson("audit", tenantId)).entries as AuditEntry[];
    expect(trail.map((e) => e.action)).toEqual(expected);

    const erased = await atrium("tenants", "delete", tenantId, "--erase");
    expect(erased.code).toBe(0);
    expect(erased.stdout).toContain("only the audit record of the erase remains");
    const after = (await atriumJson("audit", tenantId)).entries as AuditEntry[];
    expect(after).toEqual([
      {
        tenantId,
        id: expect.any(String),
        at: expect.any(String),
        actor: "local-admin",
        action: "tenant.erase",
        target: tenantId,
      },
    ]);
    expect((await atrium("tenants", "get", tenantId)).code).toBe(1);
    expect((await atrium("tenants", "delete", tenantId, "--erase")).code).toBe(1);
  });

  it("read verbs leave no audit entry", async () => {
    const created = await atriumJson("tenants", "create", "--name", "Reader", "--tier", "pro");
    const id = created.tenant.id;
    await atrium("tenants", "get", id);
    await atrium("tenants", "list");
    await atrium("keys", "list", id);
    await atrium("endpoints", "list", id);
    await atrium("audit", id);
    const trail = (await atriumJson("audit", id)).entries as AuditEntry[];
    expect(trail.map((e) => e.action)).toEqual(["tenant.create"]);
  });
});
