import type { Platform } from "@atrium/local/platform";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startTestPlatform, stopTestPlatform } from "../support/platform";

// Before the handlers are imported (on the first call): Powertools reads these once, as at a cold start.
process.env.POWERTOOLS_LOG_LEVEL = "INFO";
process.env.POWERTOOLS_METRICS_DISABLED = "false";

let platform: Platform;
let dataDir: string;
const written: string[] = [];

beforeAll(async () => {
  ({ platform, dataDir } = await startTestPlatform());
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  });
});

afterAll(async () => {
  vi.restoreAllMocks();
  await stopTestPlatform(platform, dataDir);
});

const SECRET_PROMPT = "my-secret-diagnosis-7f3a";

function jsonLines(): Record<string, unknown>[] {
  return written
    .flatMap((chunk) => chunk.split("\n"))
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line));
}

describe("handler output", () => {
  it("logs with tenant keys, publishes EMF with a tenant dimension, and leaks no key or prompt", async () => {
    const response = await fetch(`${platform.gatewayUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${platform.demoTenant.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: "llama-3.1-8b-instruct",
        messages: [{ role: "user", content: SECRET_PROMPT }],
      }),
    });
    expect(response.status).toBe(200);
    const reply = await response.text();
    expect(reply).toContain(SECRET_PROMPT); // the model echoes it, so its absence below means something

    const lines = jsonLines();
    const served = lines.filter((line) => line.message === "request served");
    expect(served).toHaveLength(1);
    expect(served[0]).toMatchObject({
      level: "INFO",
      tenantId: platform.demoTenant.id,
      tier: "pro",
      keyId: expect.stringMatching(/^key-/),
      model: "llama-3.1-8b-instruct",
      route: "shared",
      statusCode: 200,
    });

    type Emf = Record<string, unknown> & {
      _aws: {
        CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[];
      };
    };
    const documents = lines.filter((line) => "_aws" in line) as Emf[];
    const directive = (emf: Emf) => emf._aws.CloudWatchMetrics[0];
    const names = (emf: Emf) => directive(emf)?.Metrics.map((m) => m.Name);
    // Two documents (docs/metrics.md): the few per-tenant metrics with a tenantId dimension, the rest
    // per service, with the tenant id as metadata.
    const perTenant = documents.find((emf) => directive(emf)?.Dimensions.flat().includes("tenantId"));
    const perService = documents.find((emf) => !directive(emf)?.Dimensions.flat().includes("tenantId"));
    expect(directive(perTenant as Emf)?.Namespace).toBe("Atrium");
    expect(perTenant?.tenantId).toBe(platform.demoTenant.id);
    expect(names(perTenant as Emf)?.sort()).toEqual([
      "CompletionTokens",
      "ModelLatency",
      "OverheadLatency",
      "PromptTokens",
      "Requests",
    ]);
    expect(directive(perService as Emf)?.Dimensions).toEqual([["service"]]);
    expect(perService?.tenantId).toBe(platform.demoTenant.id);
    expect(names(perService as Emf)).toEqual(expect.arrayContaining(["ChatCompletions", "ModelLatency"]));

    const everything = written.join("");
    expect(everything).not.toContain(platform.demoTenant.apiKey);
    expect(everything).not.toContain(SECRET_PROMPT);
  });
});
