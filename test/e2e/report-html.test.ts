/**
 * The HTML report in a real browser: a known set of calls by two tenants on the local platform,
 * written by `atrium report --format html`, opened in headless Chromium (Debian's package, driven by
 * playwright-core) from a file: no console or page errors, no request but the file, every chart drew
 * marks, the tenants' figures are the JSON report's. The screenshot goes to .atrium/report.png.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Report } from "@atrium/core/reports/build-report";
import { dayOf } from "@atrium/core/usage-ledger";
import { type Platform, REPO_ROOT } from "@atrium/local/platform";
import OpenAI from "openai";
import { chromium } from "playwright-core";
import { describe, expect, it } from "vitest";
import { runCli } from "../support/cli";
import { adminCall, useTestPlatform } from "../support/platform";
import { settledUsageOf } from "../support/tenant-calls";

const CHROMIUM = "/usr/bin/chromium";
const MODEL = "llama-3.1-8b-instruct";
const messages = [{ role: "user" as const, content: "chart me" }];
/** A name that would fetch `x` and run script if it were not escaped. */
const HOSTILE = '<img src=x onerror="alert(1)"> B';

// Before the handlers are imported: their EMF metrics go to the local CloudWatch, which the report reads.
process.env.POWERTOOLS_METRICS_DISABLED = "false";

let platform: Platform;
useTestPlatform((started) => {
  platform = started;
});

async function tenant(name: string, limits: Record<string, number> = {}) {
  const { status, body } = await adminCall(platform, "POST", "/admin/tenants", { name, tier: "pro", limits });
  expect(status).toBe(201);
  const openai = new OpenAI({ apiKey: body.apiKey, baseURL: `${platform.gatewayUrl}/v1`, maxRetries: 0 });
  return { id: body.tenant.id as string, apiKey: body.apiKey as string, openai };
}

describe.skipIf(!existsSync(CHROMIUM))(
  `the HTML report in headless Chromium (needs ${CHROMIUM}: .ci/run installs Debian's chromium)`,
  () => {
    it("renders without errors or network, draws every chart and shows the JSON's figures", async () => {
      // Prepare: A makes two calls; B makes one, is refused once (rate), then makes another.
      const a = await tenant("Chart A");
      const b = await tenant(HOSTILE, { requestsPerMinute: 1, burst: 1 });
      await a.openai.chat.completions.create({ model: MODEL, messages, max_tokens: 10 });
      await a.openai.chat.completions.create({ model: MODEL, messages, max_tokens: 25 });
      await b.openai.chat.completions.create({ model: MODEL, messages, max_tokens: 8 });
      await expect(b.openai.chat.completions.create({ model: MODEL, messages })).rejects.toMatchObject({
        status: 429,
      });
      await adminCall(platform, "PATCH", `/admin/tenants/${b.id}`, {
        // A burst of 1200 at 600/min tolerates the old limit's last request (a minute ahead), so the
        // next call is admitted at once whatever the timing.
        limits: { requestsPerMinute: 600, burst: 1200 },
      });
      await b.openai.chat.completions.create({ model: MODEL, messages, max_tokens: 12 });
      for (const t of [a, b]) await settledUsageOf(platform, t.apiKey);

      const today = dayOf(Date.now());
      const env = { ATRIUM_URL: platform.gatewayUrl, ATRIUM_ADMIN_TOKEN: platform.adminToken };
      const dir = await mkdtemp(join(tmpdir(), "atrium-report-html-"));
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
        ],
      });
      try {
        // Act: the CLI writes the page; the browser opens it from disk.
        const out = join(dir, "report.html");
        const run = await runCli(
          ["report", "--all", "--from", today, "--to", today, "--format", "html", "--out", out],
          env,
        );
        expect(run).toMatchObject({ code: 0, stdout: expect.stringContaining(`Wrote the html report`) });
        const json = await runCli(
          ["report", "--all", "--from", today, "--to", today, "--format", "json"],
          env,
        );
        const report: Report = JSON.parse(json.stdout);
        expect(report.cloudwatch).toMatchObject({ available: true, note: null });

        const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
        const problems: string[] = [];
        const requests: string[] = [];
        page.on("console", (msg) => {
          if (msg.type() === "error" || msg.type() === "warning")
            problems.push(`console ${msg.type()}: ${msg.text()}`);
        });
        page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
        page.on("request", (request) => requests.push(request.url()));
        page.on("dialog", (dialog) => {
          problems.push(`dialog: ${dialog.message()}`);
          void dialog.dismiss();
        });
        const url = pathToFileURL(out).href;
        await page.goto(url, { waitUntil: "load" });

        // Assess: a quiet page that fetched only itself.
        expect(problems).toEqual([]);
        expect(requests).toEqual([url]);

        // Every chart drew marks of non-zero size: bars, or a latency chart's points.
        const charts = await page.locator("svg[data-chart]").evaluateAll((svgs) =>
          svgs.map((svg) => ({
            name: svg.getAttribute("data-chart"),
            marks: [...svg.querySelectorAll("rect, circle")].filter((r) => {
              // An SVG shape's box in its own units (the project's TypeScript has no DOM types).
              const box = (r as unknown as { getBBox(): { width: number; height: number } }).getBBox();
              return box.width > 0 && box.height > 0;
            }).length,
          })),
        );
        // Latency per tenant (both made two calls: in id order), each with its model's and Atrium's p50 and p99.
        const latency = [a.id, b.id].sort().map((id) => `latency-${id}`);
        expect(charts.map((c) => c.name)).toEqual(["tokens", "refusals", "cost", ...latency]);
        for (const chart of charts) expect(chart.marks, chart.name ?? "").toBeGreaterThan(0);
        for (const name of latency) {
          const lines = page.locator(`svg[data-chart="${name}"] path`);
          expect(await lines.count(), name).toBe(4);
        }
        for (const name of ["tokens", "refusals", "cost", ...latency]) {
          const box = await page.locator(`svg[data-chart="${name}"]`).boundingBox();
          expect(box?.width, name).toBeGreaterThan(0);
          expect(box?.height, name).toBeGreaterThan(0);
        }

        // Each tenant's row is the JSON report's, its name shown as written.
        const count = (n: number) => n.toLocaleString("en-US");
        for (const t of [a, b]) {
          const figures = report.tenants.find((r) => r.tenantId === t.id);
          expect(figures, t.id).toBeDefined();
          if (!figures) continue;
          const row = page.locator(`tr[data-tenant="${t.id}"]`);
          const name = await row.locator("th").evaluate((th) => th.firstChild?.textContent);
          expect(name).toBe(figures.name);
          const cells = await row.locator("td").allInnerTexts();
          const refused = Object.values(figures.totals.refused).reduce((s, n) => s + n, 0);
          expect(cells.slice(0, 6)).toEqual(
            [
              figures.totals.requests,
              figures.totals.inputTokens,
              figures.totals.outputTokens,
              figures.totals.tokens,
              figures.totals.errors,
              refused,
            ].map(count),
          );
          expect(cells[8]).toBe(`$${figures.totals.costUsd.toFixed(2)}`);
          // Latency from CloudWatch: present, p50 at most p99, the model's part above zero.
          const { model, atrium } = figures.latency ?? {};
          expect(model?.p50, t.id).toBeGreaterThan(0);
          expect(model?.p50 ?? Number.NaN).toBeLessThanOrEqual(model?.p99 ?? Number.NaN);
          expect(atrium?.p50 ?? Number.NaN).toBeLessThanOrEqual(atrium?.p99 ?? Number.NaN);
          expect(cells[9]).toMatch(/^[\d.]+ ms \/ [\d.]+ ms$/);
          expect(cells[10]).toMatch(/^[\d.]+ ms \/ [\d.]+ ms$/);
          // The ledger and CloudWatch agree on every pair, in the page as in the JSON.
          const reconciled = await page.locator(`tr[data-reconciled="${t.id}"] td`).allInnerTexts();
          expect(reconciled.at(-1), t.id).toBe("match");
          expect(figures.cloudwatch?.reconciliation.map((p) => p.status)).toEqual(Array(5).fill("match"));
        }
        expect(report.tenants.find((r) => r.tenantId === b.id)?.totals).toMatchObject({
          requests: 2,
          refused: { requests: 1 },
        });
        expect(await page.locator("img").count()).toBe(0);

        await mkdir(join(REPO_ROOT, ".atrium"), { recursive: true });
        await page.screenshot({ path: join(REPO_ROOT, ".atrium", "report.png"), fullPage: true });
      } finally {
        await browser.close();
        await rm(dir, { recursive: true, force: true });
      }
    }, 90_000);
  },
);
