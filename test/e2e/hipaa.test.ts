import type { Platform } from "@atrium/local/platform";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { errorOf, type Json } from "../support/http";
import { adminCall, startTestPlatform, stopTestPlatform } from "../support/platform";

// Before the handlers are imported (on the first call): Powertools reads these once, as at a cold start.
process.env.POWERTOOLS_LOG_LEVEL = "INFO";
process.env.POWERTOOLS_LOGGER_LOG_EVENT = "true";
process.env.POWERTOOLS_METRICS_DISABLED = "false";

let platform: Platform;
let dataDir: string;
const written: string[] = [];

beforeAll(async () => {
  ({ platform, dataDir } = await startTestPlatform());
  const capture = (chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  };
  vi.spyOn(process.stdout, "write").mockImplementation(capture);
  vi.spyOn(process.stderr, "write").mockImplementation(capture);
});

afterAll(async () => {
  vi.restoreAllMocks();
  await stopTestPlatform(platform, dataDir);
});

const LLAMA = "llama-3.1-8b-instruct";
const PROMPT = "patient-7f3a-diagnosis-secret";
const ACCEPT_SECRET = "application/x-patient-7f3a-record";

const admin = (method: string, path: string, body?: unknown) => adminCall(platform, method, path, body);

function chat(apiKey: string, model = LLAMA) {
  return fetch(`${platform.gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: PROMPT }], max_tokens: 40 }),
  });
}

/** A raw invocation whose Accept the reference model refuses, quoting it back in its error (a 406). */
function rejectedInvocation(apiKey: string) {
  return fetch(`${platform.gatewayUrl}/v1/models/${LLAMA}/invocations`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json", accept: ACCEPT_SECRET },
    body: JSON.stringify({ inputs: PROMPT }),
  });
}

async function dedicatedTenant(name: string, tier: string, compliance: string[]) {
  const created = await admin("POST", "/admin/tenants", { name, tier, compliance });
  expect(created.status).toBe(201);
  const id: string = created.body.tenant.id;
  const endpointName = `${id}-llama`;
  expect((await admin("POST", `/admin/tenants/${id}/endpoints`, { model: LLAMA, endpointName })).status).toBe(
    200,
  );
  return { id, apiKey: created.body.apiKey as string, endpointName };
}

const sharedCalls = () =>
  platform.sharedEndpoints.reduce((sum, name) => sum + platform.sagemaker.invocations(name).length, 0);

describe("hipaa", () => {
  it("is refused on pooled tiers, at create and at update", async () => {
    const create = await admin("POST", "/admin/tenants", {
      name: "Clinic",
      tier: "pro",
      compliance: ["hipaa"],
    });
    expect(create.status).toBe(400);
    expect(create.body.error).toMatchObject({ code: "hipaa_requires_dedicated", param: "compliance" });

    const clinic = await admin("POST", "/admin/tenants", {
      name: "Clinic",
      tier: "business",
      compliance: ["hipaa"],
    });
    const downgrade = await admin("PATCH", `/admin/tenants/${clinic.body.tenant.id}`, { tier: "free" });
    expect(downgrade.status).toBe(400);
    expect(downgrade.body.error).toMatchObject({ code: "hipaa_requires_dedicated", param: "tier" });
    const pool = await admin("POST", "/admin/tenants", { name: "Gym", tier: "free" });
    const upgrade = await admin("PATCH", `/admin/tenants/${pool.body.tenant.id}`, { compliance: ["hipaa"] });
    expect(upgrade.body.error).toMatchObject({ code: "hipaa_requires_dedicated", param: "compliance" });
  });

  it("never reaches a shared endpoint, even on a bridge tier that has shared fallbacks", async () => {
    const clinic = await dedicatedTenant("Bridge Clinic", "business", ["hipaa"]);
    const before = sharedCalls();
    const own = await chat(clinic.apiKey);
    expect(own.status).toBe(200);
    expect(own.headers.get("x-atrium-route")).toBe("dedicated");
    const other = await chat(clinic.apiKey, "mistral-7b-instruct");
    expect(other.status).toBe(404);
    expect((await errorOf(other)).code).toBe("model_not_provisioned");
    const listed = await fetch(`${platform.gatewayUrl}/v1/models`, {
      headers: { authorization: `Bearer ${clinic.apiKey}` },
    });
    expect(((await listed.json()) as Json).data.map((m: Json) => m.id)).toEqual([LLAMA]);
    expect(sharedCalls()).toBe(before);
  });

  it("keeps prompts and completions out of the logs, on success and on every error path", async () => {
    const clinic = await dedicatedTenant("Silo Clinic", "enterprise", ["hipaa"]);
    const logsBefore = written.length;

    const ok = await chat(clinic.apiKey);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain(PROMPT); // the reference model echoes it: its absence below means something

    const rejected = await rejectedInvocation(clinic.apiKey);
    expect(rejected.status).toBe(400);
    const reason = await errorOf(rejected);
    expect(reason.code).toBe("model_rejected_request");
    expect(reason.message).not.toContain("patient-7f3a");

    platform.sagemaker.injectFault(clinic.endpointName, { error: "ModelError", times: 1 });
    expect((await chat(clinic.apiKey)).status).toBe(502);

    const output = written.slice(logsBefore).join("");
    const lines = output.split("\n").filter((line) => line.startsWith("{"));
    // The capture works and the calls were logged, with the tenant, but without what they carried.
    const served = lines.map((line) => JSON.parse(line)).filter((line) => line.message === "request served");
    expect(served.map((line) => line.statusCode)).toEqual([200, 400, 502]);
    expect(served.every((line) => line.tenantId === clinic.id)).toBe(true);
    expect(output).not.toContain("patient-7f3a");
    expect(output).not.toContain(clinic.apiKey);
    expect(output).not.toContain("Lambda invocation event");
  });

  it("changes only what a HIPAA caller is told: others still get the model's reason", async () => {
    const lab = await dedicatedTenant("Plain Lab", "business", []);
    const rejected = await rejectedInvocation(lab.apiKey);
    expect(rejected.status).toBe(400);
    expect((await errorOf(rejected)).message).toContain(ACCEPT_SECRET);
  });

  it("runs with event logging really on (the admin routes do log their events)", async () => {
    const logsBefore = written.length;
    await admin("GET", "/admin/tenants?limit=1");
    expect(written.slice(logsBefore).join("")).toContain("Lambda invocation event");
  });
});
