/**
 * Reports on the local platform (docs/reports.md): a known set of calls (two pool tenants on the
 * shared endpoint, with successes, a stream, a failure and a refusal; a silo tenant on its dedicated
 * endpoint) is what GET /admin/reports answers, what its CSV lists, and what `atrium report` prints;
 * its latency comes from the local CloudWatch, which agrees with the ledger and the AWS CLI.
 */
import { execFile, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Report } from "@atrium/core/reports/build-report";
import { dayOf, hourOf } from "@atrium/core/usage-ledger";
import type { Platform } from "@atrium/local/platform";
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { runCli } from "../support/cli";
import { adminCall, useTestPlatform } from "../support/platform";
import { settledUsageOf } from "../support/tenant-calls";

// Before the handlers are imported: their EMF metrics go to the local CloudWatch, which reports read.
process.env.POWERTOOLS_METRICS_DISABLED = "false";
const hasAws = spawnSync("aws", ["--version"], { encoding: "utf8" }).status === 0;

let platform: Platform;
useTestPlatform((started) => {
  platform = started;
});

const MODEL = "llama-3.1-8b-instruct";
const SHARED = "atrium-shared-llama-8b";
const messages = [{ role: "user" as const, content: "report me" }];

async function tenant(name: string, tier: string, limits: Record<string, number> = {}) {
  const { status, body } = await adminCall(platform, "POST", "/admin/tenants", { name, tier, limits });
  expect(status).toBe(201);
  const openai = new OpenAI({ apiKey: body.apiKey, baseURL: `${platform.gatewayUrl}/v1`, maxRetries: 0 });
  return { id: body.tenant.id as string, apiKey: body.apiKey as string, openai };
}

const report = async (query: string) => {
  const { status, body } = await adminCall(platform, "GET", `/admin/reports?${query}`);
  expect(status).toBe(200);
  return body as Report;
};

interface Known {
  a: { id: string; tokens: number; prompt: number; completion: number };
  b: { id: string; tokens: number; prompt: number; completion: number };
  c: { id: string; tokens: number; endpointName: string };
  /** The UTC hours (YYYY-MM-DDTHH) the calls were made in. */
  hours: string[];
}
let known: Known;
let making: Promise<void> | undefined;
const today = dayOf(Date.now());

/** Makes the known calls once, for the file (inside a test: it waits with expect.poll). */
const madeCalls = () => {
  making ??= makeCalls();
  return making;
};

async function makeCalls(): Promise<void> {
  const started = hourOf(Date.now());
  const a = await tenant('Report A, "pool"', "pro");
  const b = await tenant("Report B", "pro", { requestsPerMinute: 1, burst: 1 });
  const c = await tenant("Report C", "enterprise");
  const endpointName = `${c.id}-llama`;
  expect(
    (await adminCall(platform, "POST", `/admin/tenants/${c.id}/endpoints`, { model: MODEL, endpointName }))
      .status,
  ).toBe(200);

  // A: two buffered calls, one stream, one failure (refunded).
  const first = await a.openai.chat.completions.create({ model: MODEL, messages, max_tokens: 10 });
  const second = await a.openai.chat.completions.create({ model: MODEL, messages, max_tokens: 20 });
  const stream = await a.openai.chat.completions.create({
    model: MODEL,
    messages,
    max_tokens: 15,
    stream: true,
    stream_options: { include_usage: true },
  });
  let streamed = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
  for await (const chunk of stream) streamed = chunk.usage ?? streamed;
  platform.sagemaker.injectFault(SHARED, { error: "ModelError", times: 1 });
  await expect(a.openai.chat.completions.create({ model: MODEL, messages })).rejects.toMatchObject({
    status: 502,
  });

  // B: a call, a refusal (rate), then a call once its limit is raised, which writes the refusal too.
  const b1 = await b.openai.chat.completions.create({ model: MODEL, messages, max_tokens: 8 });
  await expect(b.openai.chat.completions.create({ model: MODEL, messages })).rejects.toMatchObject({
    status: 429,
  });
  await adminCall(platform, "PATCH", `/admin/tenants/${b.id}`, {
    // A burst of 1200 at 600/min tolerates the old limit's last request (a minute ahead), so the
    // next call is admitted at once whatever the timing.
    limits: { requestsPerMinute: 600, burst: 1200 },
  });
  const b2 = await b.openai.chat.completions.create({ model: MODEL, messages, max_tokens: 12 });

  // C: one call on its dedicated endpoint.
  const c1 = await c.openai.chat.completions.create({ model: MODEL, messages, max_tokens: 6 });

  const usages = [first.usage, second.usage, streamed];
  const sum = (list: (typeof streamed | undefined)[], field: keyof typeof streamed) =>
    list.reduce((total, usage) => total + (usage?.[field] ?? 0), 0);
  known = {
    a: {
      id: a.id,
      tokens: sum(usages, "total_tokens"),
      prompt: sum(usages, "prompt_tokens"),
      completion: sum(usages, "completion_tokens"),
    },
    b: {
      id: b.id,
      tokens: sum([b1.usage, b2.usage], "total_tokens"),
      prompt: sum([b1.usage, b2.usage], "prompt_tokens"),
      completion: sum([b1.usage, b2.usage], "completion_tokens"),
    },
    c: { id: c.id, tokens: c1.usage?.total_tokens ?? 0, endpointName },
    hours: [...new Set([started, hourOf(Date.now())])],
  };
  // A stream settles after its last byte: every call is in the ledger once nothing is in flight.
  for (const t of [a, b, c]) await settledUsageOf(platform, t.apiKey);
}

describe("GET /admin/reports", () => {
  it("lists exactly the calls made: per tenant and model, tokens, errors, refusals and routes", async () => {
    await madeCalls();
    const body = await report(`from=${today}&to=${today}`);
    const ids = [known.a.id, known.b.id, known.c.id, platform.demoTenant.id].sort();
    expect(body.tenants.map((t) => t.tenantId)).toEqual(ids);
    const of = (id: string) => body.tenants.find((t) => t.tenantId === id);
    expect(of(platform.demoTenant.id)?.rows).toEqual([]);
    expect(of(known.a.id)?.rows).toEqual([
      expect.objectContaining({
        period: today,
        model: MODEL,
        requests: 4,
        tokens: known.a.tokens,
        inputTokens: known.a.prompt,
        outputTokens: known.a.completion,
        errors: 1,
        sharedCalls: 4,
        dedicatedCalls: 0,
        refused: {},
      }),
    ]);
    expect(of(known.b.id)?.rows).toEqual([
      expect.objectContaining({
        requests: 2,
        tokens: known.b.tokens,
        inputTokens: known.b.prompt,
        outputTokens: known.b.completion,
        errors: 0,
        sharedCalls: 2,
        refused: { requests: 1 },
      }),
    ]);
    expect(of(known.c.id)?.rows).toEqual([
      expect.objectContaining({
        requests: 1,
        tokens: known.c.tokens,
        sharedCalls: 0,
        dedicatedCalls: 1,
        sharedCostUsd: 0,
      }),
    ]);
    // Every tenant's ledger adds up to its limiter's month total.
    for (const t of body.tenants) {
      expect(t.reconciliation, t.tenantId).toMatchObject({ status: "match", difference: 0 });
    }
  });

  it("splits the shared endpoint's hours by weighted tokens, exactly, and flags the unpriced dedicated endpoint", async () => {
    await madeCalls();
    const body = await report(`from=${today}&to=${today}`);
    const shared = body.endpoints.find((e) => e.endpointName === SHARED);
    // config/local.json: one ml.g5.xlarge at $1.5 an hour, on since the day began.
    const hours = Math.ceil((Date.parse(body.generatedAt) - Date.parse(`${today}T00:00:00Z`)) / 3_600_000);
    expect(shared).toMatchObject({ instanceHours: hours, costUsd: hours * 1.5, idleUsd: 0 });
    const weight = (t: { tokens: number; completion: number }) => t.tokens + 2 * t.completion;
    const aShare = body.tenants.find((t) => t.tenantId === known.a.id)?.totals.sharedCostUsd ?? 0;
    const bShare = body.tenants.find((t) => t.tenantId === known.b.id)?.totals.sharedCostUsd ?? 0;
    expect(Math.round((aShare + bShare) * 1e6)).toBe(Math.round(hours * 1.5 * 1e6));
    const exactA = (hours * 1.5 * weight(known.a)) / (weight(known.a) + weight(known.b));
    expect(Math.abs(aShare - exactA)).toBeLessThanOrEqual(1e-6);
    // No tenant called mistral: its whole day so far is idle.
    expect(body.idle).toEqual([
      {
        period: today,
        endpointName: "atrium-shared-mistral-7b",
        model: "mistral-7b-instruct",
        costUsd: hours * 1.5,
      },
    ]);
    expect(body.endpoints.find((e) => e.endpointName === known.c.endpointName)).toMatchObject({
      kind: "dedicated",
      tenantId: known.c.id,
      hourlyPriceUsd: null,
    });
    expect(body.flags).toEqual([
      `endpoint ${known.c.endpointName}: no price (no instanceType in the stage config); its cost reads 0`,
    ]);
  });

  it("answers one tenant by hour, and 400 or 404 for a bad query", async () => {
    await madeCalls();
    const body = await report(`from=${today}&to=${today}&period=hour&tenant=${known.b.id}`);
    expect(body.tenants.map((t) => t.tenantId)).toEqual([known.b.id]);
    // B's calls fell in the hour they were made (or two, when made across an hour's turn).
    const rows = body.tenants[0]?.rows ?? [];
    expect(rows.every((r) => known.hours.includes(r.period))).toBe(true);
    expect(rows.reduce((sum, r) => sum + r.requests, 0)).toBe(2);
    const bad = await adminCall(platform, "GET", `/admin/reports?from=${today}&to=2020-01-01`);
    expect({ status: bad.status, param: bad.body.error.param }).toEqual({ status: 400, param: "to" });
    const missing = await adminCall(
      platform,
      "GET",
      `/admin/reports?from=${today}&to=${today}&tenant=tn-nobody00000`,
    );
    expect(missing.status).toBe(404);
    const tenantKey = await fetch(`${platform.gatewayUrl}/admin/reports?from=${today}&to=${today}`, {
      headers: { authorization: `Bearer ${platform.demoTenant.apiKey}` },
    });
    expect(tenantKey.status).toBe(403);
  });
});

describe("latency and the check against CloudWatch", () => {
  it("gives each calling tenant its model's and Atrium's p50 and p99, and CloudWatch agrees with the ledger", async () => {
    await madeCalls();
    // A stream's metrics are sent just after its settle: the report is read until they are in.
    const differences = async () =>
      (await report(`from=${today}&to=${today}`)).tenants.flatMap((t) =>
        (t.cloudwatch?.reconciliation ?? [null]).filter((p) => p?.status !== "match"),
      );
    await expect.poll(differences, { interval: 50 }).toEqual([]);
    const body = await report(`from=${today}&to=${today}`);
    expect(body.cloudwatch).toMatchObject({ available: true, note: null, queries: 4 * 14 });
    const of = (id: string) => body.tenants.find((t) => t.tenantId === id) as Report["tenants"][number];
    for (const id of [known.a.id, known.b.id, known.c.id]) {
      const { latency } = of(id);
      for (const part of [latency?.model, latency?.atrium]) {
        expect(part?.p50 ?? Number.NaN, id).toBeLessThanOrEqual(part?.p99 ?? Number.NaN);
        expect(part?.p50, id).toBeGreaterThanOrEqual(0);
      }
      expect(latency?.model.p50, id).toBeGreaterThan(0);
      expect(latency?.periods.map((p) => p.period)).toEqual([today]);
    }
    // Like with like: A's calls that reached the model (two, a stream, a failure), tokens, B's refusal.
    const pairs = (id: string) =>
      Object.fromEntries((of(id).cloudwatch?.reconciliation ?? []).map((p) => [p.name, p.cloudwatch]));
    expect(pairs(known.a.id)).toEqual({
      requests: 4,
      promptTokens: known.a.prompt,
      completionTokens: known.a.completion,
      refusals: 0,
      errors: 1,
    });
    expect(pairs(known.b.id)).toMatchObject({ requests: 2, refusals: 1, errors: 0 });
    // The demo tenant made no call: no latency to show, and nothing to disagree on.
    expect(of(platform.demoTenant.id).latency?.model).toEqual({ p50: null, p99: null });
    expect(body.flags.filter((f) => f.includes("CloudWatch"))).toEqual([]);
  });

  it.skipIf(!hasAws)("reports the percentiles that the AWS CLI reads from the local CloudWatch", async () => {
    await madeCalls();
    const body = await report(`from=${today}&to=${today}&tenant=${known.a.id}`);
    const query = (id: string, metric: string, stat: string) => ({
      Id: id,
      MetricStat: {
        Metric: {
          Namespace: "Atrium",
          MetricName: metric,
          Dimensions: [
            { Name: "service", Value: "atrium" },
            { Name: "tenantId", Value: known.a.id },
          ],
        },
        Period: 86_400,
        Stat: stat,
      },
    });
    const { stdout } = await promisify(execFile)(
      "aws",
      [
        "cloudwatch",
        "get-metric-data",
        "--endpoint-url",
        platform.cloudwatchUrl,
        "--region",
        platform.config.region,
        "--output",
        "json",
        "--start-time",
        `${today}T00:00:00Z`,
        "--end-time",
        new Date(Date.parse(`${today}T00:00:00Z`) + 86_400_000).toISOString(),
        "--metric-data-queries",
        JSON.stringify([
          query("modelp50", "ModelLatency", "p50"),
          query("modelp99", "ModelLatency", "p99"),
          query("atriump50", "OverheadLatency", "p50"),
          query("atriump99", "OverheadLatency", "p99"),
        ]),
      ],
      { env: { ...process.env, AWS_ACCESS_KEY_ID: "cli", AWS_SECRET_ACCESS_KEY: "cli" } },
    );
    const read = Object.fromEntries(
      (JSON.parse(stdout) as { MetricDataResults: { Id: string; Values: number[] }[] }).MetricDataResults.map(
        (r) => [r.Id, r.Values[0]],
      ),
    );
    const { model, atrium } = body.tenants[0]?.latency ?? {};
    expect(read).toEqual({
      modelp50: model?.p50,
      modelp99: model?.p99,
      atriump50: atrium?.p50,
      atriump99: atrium?.p99,
    });
  });
});

describe("atrium report", () => {
  const env = () => ({ ATRIUM_URL: platform.gatewayUrl, ATRIUM_ADMIN_TOKEN: platform.adminToken });

  it("writes the CSV for finance: one row per tenant, day and model, then the idle line", async () => {
    await madeCalls();
    const dir = await mkdtemp(join(tmpdir(), "atrium-report-"));
    try {
      const out = join(dir, "report.csv");
      const run = await runCli(
        ["report", "--all", "--from", today, "--to", today, "--format", "csv", "--out", out],
        env(),
      );
      expect(run).toMatchObject({ code: 0, stdout: expect.stringContaining(`to ${out}`) });
      expect(run.stderr).toContain("atrium report: reading the ledger, limits and metrics of all tenants");
      const lines = (await readFile(out, "utf8")).split("\r\n");
      const rows = lines.slice(1, -1).map((line) => line.split(",").slice(0, 13));
      const [first, second, third] = [known.a, known.b, known.c].map((t) => t.id);
      const byId = Object.fromEntries(rows.map((row) => [`${row[0]} ${row[1]}`, row]));
      expect(Object.keys(byId).sort()).toEqual(
        [`idle `, `tenant ${first}`, `tenant ${second}`, `tenant ${third}`].sort(),
      );
      // The name with a comma and quotes is one quoted field.
      expect(lines.find((line) => line.includes(known.a.id))).toContain(
        `,"Report A, ""pool""",${today},${MODEL},,4,${known.a.tokens},`,
      );
      expect(byId[`tenant ${second}`]).toEqual([
        "tenant",
        second,
        "Report B",
        today,
        MODEL,
        "",
        "2",
        String(known.b.tokens),
        String(known.b.prompt),
        String(known.b.completion),
        "0",
        "2",
        "0",
      ]);
      expect(byId[`tenant ${third}`]?.slice(6)).toEqual([
        "1",
        String(known.c.tokens),
        expect.any(String),
        expect.any(String),
        "0",
        "0",
        "1",
      ]);
      expect(lines.at(-2)).toMatch(
        /^idle,,,.*,mistral-7b-instruct,atrium-shared-mistral-7b,(0,){13}[\d.]+,0\.000000,[\d.]+$/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("prints JSON the same as the API's, and a table for the terminal", async () => {
    await madeCalls();
    const json = await runCli(
      ["report", "--tenant", known.a.id, "--from", today, "--to", today, "--format", "json"],
      env(),
    );
    expect(json.code).toBe(0);
    const printed: Report = JSON.parse(json.stdout);
    expect(printed.tenants.map((t) => [t.tenantId, t.totals.requests, t.totals.tokens])).toEqual([
      [known.a.id, 4, known.a.tokens],
    ]);

    const human = await runCli(["report", "--all", "--from", today, "--to", today], env());
    expect(human.code).toBe(0);
    const row = human.stdout
      .split("\n")
      .find((line) => line.startsWith(`${known.b.id} `) && line.includes(MODEL));
    expect(row?.split(/\s+/).slice(0, 10)).toEqual([
      known.b.id,
      today,
      MODEL,
      "2",
      String(known.b.tokens),
      String(known.b.prompt),
      String(known.b.completion),
      "0",
      "2/0",
      "requests=1",
    ]);
    expect(human.stdout).toContain(`! endpoint ${known.c.endpointName}: no price`);

    const usage = await runCli(["report", "--from", today, "--to", today], env());
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("give one of --tenant TENANT_ID or --all");
  });
});
