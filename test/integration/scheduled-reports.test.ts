/**
 * The scheduled run against the local DynamoDB (docs/reports.md): the period's report written as JSON
 * and CSV under its key, and budget alerts for exactly the tenants that crossed 80% or 100% since the
 * run before. S3 and SNS cannot run here: the bucket and the topic are in-memory fakes of them.
 */

import { generateApiKey } from "@atrium/core/api-key";
import { parseStageConfig } from "@atrium/core/config";
import { limiterKey } from "@atrium/core/limiter-item";
import { type BudgetAlert, budgetAlertMessage } from "@atrium/core/reports/budget-alerts";
import type { Report } from "@atrium/core/reports/build-report";
import {
  type AlertSink,
  publishScheduledReport,
  type ReportStore,
} from "@atrium/core/reports/publish-reports";
import { TenantStore } from "@atrium/core/store";
import { LimiterTable, TenantTable, UsageTable } from "@atrium/core/tables";
import type { Tenant } from "@atrium/core/tenant";
import { ledgerUpdate } from "@atrium/core/usage-ledger";
import { dynamoClientFor, ensureTable, localDynamoClient } from "@atrium/local/dynamodb";
import { describe, expect, it } from "vitest";
import { sharedDynamo, uniqueTableName } from "../support/dynamodb";

/** A fake of the S3 bucket: the objects put, by key. */
class FakeS3ReportStore implements ReportStore {
  readonly objects = new Map<string, { body: string; contentType: string }>();
  async put({ key, body, contentType }: { key: string; body: string; contentType: string }) {
    this.objects.set(key, { body, contentType });
  }
}

/** A fake of the SNS topic: the messages published, as the handler formats them. */
class FakeSnsAlertSink implements AlertSink {
  readonly messages: { subject: string; message: string }[] = [];
  async publish(alert: BudgetAlert) {
    this.messages.push(budgetAlertMessage(alert));
  }
}

const config = parseStageConfig({
  region: "eu-west-1",
  tiers: {
    pro: {
      tenancy: "pool",
      limits: { requestsPerMinute: 60, tokensPerMinute: 6000, concurrency: 2, monthlyTokens: 1000 },
      maxTokens: { default: 100, cap: 1000 },
      limiterFailMode: "closed",
    },
  },
  sharedEndpoints: [{ model: "llama", endpointName: "shared-llama" }],
});
const db = dynamoClientFor(sharedDynamo().url, { maxAttempts: 10 });

/** Fresh tables for one scenario: a report lists every tenant of its table. */
async function platform() {
  const names = {
    tenants: uniqueTableName("atrium-test-sched-tenants"),
    limiter: uniqueTableName("atrium-test-sched-limiter"),
    usage: uniqueTableName("atrium-test-sched-usage"),
  };
  const client = localDynamoClient(sharedDynamo().url, { maxAttempts: 10 });
  await ensureTable(client, names.tenants, TenantTable);
  await ensureTable(client, names.limiter, LimiterTable);
  await ensureTable(client, names.usage, UsageTable);
  const store = new TenantStore(db, names.tenants);
  const bucket = new FakeS3ReportStore();
  const topic = new FakeSnsAlertSink();
  const ports = {
    sources: { tenants: store.table, db, usageTable: names.usage, limiterTable: names.limiter, config },
    store: bucket,
    alerts: topic,
  };
  /** A tenant with its limiter's month total and its ledger's tokens per hour. */
  const seed = async (
    id: string,
    limiter: { month: string; used: number },
    ledger: Record<string, number>,
    name = id,
  ) => {
    const tenant: Tenant = {
      id,
      name,
      tier: "pro",
      status: "active",
      compliance: [],
      endpoints: {},
      createdAt: "2026-11-01T00:00:00.000Z",
    };
    await store.create(tenant, generateApiKey());
    await db.put({
      TableName: names.limiter,
      Item: { ...limiterKey(id, 0), month: limiter.month, monthUsed: limiter.used },
    });
    for (const [hour, tokens] of Object.entries(ledger)) {
      const counters = {
        requests: 1,
        tokens,
        promptTokens: tokens / 2,
        completionTokens: tokens / 2,
        sharedCalls: 1,
      };
      await db.update(ledgerUpdate(names.usage, { tenantId: id, hour, model: "llama", counters }, 90));
    }
  };
  return { ports, bucket, topic, seed };
}

const alertsOf = (topic: FakeSnsAlertSink) =>
  topic.messages.map((m) => JSON.parse(m.message) as BudgetAlert & { type: string });

describe("the daily run", () => {
  it("writes yesterday's report as JSON and CSV, and alerts only the tenants that crossed a threshold since the last run", async () => {
    // Prepare: the run of 2026-11-20 01:00; the one before was 2026-11-19 01:00.
    const { ports, bucket, topic, seed } = await platform();
    const hostile = 'Acme "Labs"\n<script>alert(1)</script>';
    // 650 before the last run (the 50 at 00h too: its hour ended before the run), 200 after: 650 → 850 crosses 80%.
    await seed(
      "tn-cross80",
      { month: "2026-11", used: 850 },
      { "2026-11-18T20": 600, "2026-11-19T00": 50, "2026-11-19T05": 200 },
      hostile,
    );
    // Over 80% already at the last run: 850 → 900 crosses nothing, so no repeat.
    await seed("tn-over", { month: "2026-11", used: 900 }, { "2026-11-10T10": 850, "2026-11-19T05": 50 });
    // 700 → 1000 crosses both: the higher is alerted.
    await seed(
      "tn-cross100",
      { month: "2026-11", used: 1000 },
      { "2026-11-12T10": 700, "2026-11-19T10": 300 },
    );
    // Under 80%: nothing to alert, whatever it did yesterday.
    await seed("tn-under", { month: "2026-11", used: 500 }, { "2026-11-19T10": 500 });

    // Act
    const result = await publishScheduledReport(ports, "daily", Date.parse("2026-11-20T01:00:00Z"));

    // Assess: the files
    expect(result.keys).toEqual([
      "daily/2026-11-19/report.json",
      "daily/2026-11-19/report.csv",
      "daily/2026-11-19/report.html",
    ]);
    expect(bucket.objects.get("daily/2026-11-19/report.html")?.body).toMatch(/^<!doctype html>/i);
    expect([...bucket.objects.keys()]).toEqual(result.keys);
    const json = bucket.objects.get("daily/2026-11-19/report.json");
    expect(json?.contentType).toBe("application/json");
    const report = JSON.parse(json?.body ?? "{}") as Report;
    expect([report.from, report.to, report.period]).toEqual(["2026-11-19", "2026-11-19", "day"]);
    expect(Object.fromEntries(report.tenants.map((t) => [t.tenantId, t.totals.tokens]))).toEqual({
      "tn-cross100": 300,
      "tn-cross80": 250,
      "tn-over": 50,
      "tn-under": 500,
    });
    const csv = bucket.objects.get("daily/2026-11-19/report.csv");
    expect(csv?.contentType).toBe("text/csv; charset=utf-8");
    const lines = csv?.body.trimEnd().split("\r\n") ?? [];
    expect(lines[0]).toMatch(/^line,tenant_id,tenant_name,period,model,endpoint,requests,tokens,/);
    expect(lines.filter((l) => l.startsWith("tenant,tn-under,"))).toEqual([
      expect.stringMatching(/^tenant,tn-under,tn-under,2026-11-19,llama,,1,500,/),
    ]);

    // Assess: the alerts
    expect(alertsOf(topic).map((a) => [a.tenantId, a.threshold])).toEqual([
      ["tn-cross100", 100],
      ["tn-cross80", 80],
    ]);
    const [cross100, cross80] = alertsOf(topic);
    expect(cross80).toEqual({
      type: "budget_alert",
      tenantId: "tn-cross80",
      name: hostile,
      month: "2026-11",
      threshold: 80,
      usedTokens: 850,
      monthlyTokens: 1000,
      usedPercent: 85,
      projectedTokens: report.tenants.find((t) => t.tenantId === "tn-cross80")?.budget.projectedTokens,
    });
    expect(cross80?.projectedTokens).toBeGreaterThan(850);
    expect(cross100?.usedPercent).toBe(100);
    expect(topic.messages[1]?.subject).toBe("Atrium budget: tenant tn-cross80 at 80% of 2026-11");
    expect(result.alerts.map((a) => a.tenantId)).toEqual(["tn-cross100", "tn-cross80"]);
  });

  it("on the 1st, counts the new month from zero: a tenant already over 80% of it is alerted", async () => {
    const { ports, topic, seed } = await platform();
    await seed("tn-fast", { month: "2026-12", used: 820 }, { "2026-11-30T10": 400, "2026-12-01T00": 820 });
    // Its limiter still holds November's total: nothing charged in December yet.
    await seed("tn-idle", { month: "2026-11", used: 990 }, { "2026-11-30T10": 990 });

    const result = await publishScheduledReport(ports, "daily", Date.parse("2026-12-01T01:00:00Z"));

    expect(result.label).toBe("2026-11-30");
    expect(alertsOf(topic).map((a) => [a.tenantId, a.threshold, a.month, a.usedTokens])).toEqual([
      ["tn-fast", 80, "2026-12", 820],
    ]);
  });
});

describe("the monthly run", () => {
  it("writes last month's report as JSON and CSV and publishes no alerts", async () => {
    const { ports, bucket, topic, seed } = await platform();
    await seed(
      "tn-month",
      { month: "2026-12", used: 900 },
      { "2026-11-01T00": 10, "2026-11-30T23": 20, "2026-12-01T01": 900 },
    );

    const result = await publishScheduledReport(ports, "monthly", Date.parse("2026-12-01T02:00:00Z"));

    expect(result.keys).toEqual([
      "monthly/2026-11/report.json",
      "monthly/2026-11/report.csv",
      "monthly/2026-11/report.html",
    ]);
    const report = JSON.parse(bucket.objects.get("monthly/2026-11/report.json")?.body ?? "{}") as Report;
    expect([report.from, report.to]).toEqual(["2026-11-01", "2026-11-30"]);
    expect(report.tenants.map((t) => [t.tenantId, t.totals.tokens])).toEqual([["tn-month", 30]]);
    const rows = (bucket.objects.get("monthly/2026-11/report.csv")?.body ?? "")
      .split("\r\n")
      .filter((l) => l.startsWith("tenant,tn-month,"))
      .map((l) => l.split(",").slice(3, 5));
    expect(rows).toEqual([
      ["2026-11-01", "llama"],
      ["2026-11-30", "llama"],
    ]);
    expect(topic.messages).toEqual([]);
  });
});
