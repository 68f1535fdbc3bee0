/** A tenant of its own for each test, its calls through the local gateway, and what it has been charged. */
import { generateApiKey } from "@atrium/core/api-key";
import type { LimitOverrides } from "@atrium/core/config";
import { promptTokenBound } from "@atrium/core/limits";
import { ChatRequest, promptTexts } from "@atrium/core/protocols/messages";
import { newTenant } from "@atrium/core/tenant";
import { dayOf, readLedger } from "@atrium/core/usage-ledger";
import { dynamoClientFor } from "@atrium/local/dynamodb";
import type { Platform } from "@atrium/local/platform";
import OpenAI from "openai";
import { expect } from "vitest";
import { type Json, json } from "./http";

export interface TestTenant {
  id: string;
  apiKey: string;
}

/** Onboards straight through the tenant store: these tests are about calls, not the admin API. */
export async function onboard(
  platform: Platform,
  tier = "pro",
  limits?: LimitOverrides,
): Promise<TestTenant> {
  const tenant = newTenant({ name: `Streams ${tier}`, tier, ...(limits ? { limits } : {}) }, platform.config);
  const key = generateApiKey();
  await platform.tenantStore.create(tenant, key);
  return { id: tenant.id, apiKey: key.plaintext };
}

/** The official openai client on the tenant's key, without retries (each test sees every answer). */
export const openaiFor = (platform: Platform, apiKey: string) =>
  new OpenAI({ apiKey, baseURL: `${platform.gatewayUrl}/v1`, maxRetries: 0 });

/**
 * GET /v1/usage once every call answered so far has settled: tokens used this month (settled, plus
 * reservations of calls still in flight) and calls in flight. A call settles after its response
 * (ADR 0004, "Settle off the path"), so a read just after it could still count its whole reservation.
 */
export async function usageOf(
  platform: Platform,
  apiKey: string,
): Promise<{ tokensUsed: number; inFlight: number }> {
  // Every function answered so far has returned: its settle and ledger record are written.
  await platform.gateway.idle();
  const response = await fetch(`${platform.gatewayUrl}/v1/usage`, {
    headers: { authorization: `Bearer ${apiKey}` },
  });
  expect(response.status).toBe(200);
  const body: Json = await json(response);
  return { tokensUsed: body.tokens_used, inFlight: body.in_flight };
}

/**
 * Tokens used once every call in flight has settled: a call settles (and records its ledger entry)
 * after its response, so a read just after it may still count its reservation.
 */
export async function settledUsageOf(platform: Platform, apiKey: string): Promise<number> {
  await expect.poll(async () => (await usageOf(platform, apiKey)).inFlight, { interval: 20 }).toBe(0);
  return (await usageOf(platform, apiKey)).tokensUsed;
}

/** What a chat call's reservation holds for its prompt: a stream that breaks is charged it, the model's count lost. */
export const promptReservation = (request: Record<string, unknown>) =>
  promptTokenBound(promptTexts(ChatRequest.parse(request)));

/** POST /v1/chat/completions with a raw fetch, for what the client hides (headers, exact bytes). */
export function postChat(
  platform: Platform,
  apiKey: string,
  body: Record<string, unknown>,
): Promise<Response> {
  return fetch(`${platform.gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** The `data:` payloads of a server-sent event stream, in order. */
export function sseData(text: string): string[] {
  return text
    .split("\n\n")
    .filter((event) => event.trim() !== "")
    .map((event) =>
      event
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice("data:".length).trimStart())
        .join("\n"),
    );
}

/**
 * The tenant's usage ledger for today (UTC), read straight from the platform's DynamoDB once every
 * call answered so far has been recorded (a streaming function records it after its response).
 */
export async function todaysLedger(platform: Platform, tenantId: string) {
  await platform.gateway.idle();
  const db = dynamoClientFor(platform.dynamodbUrl);
  try {
    const today = dayOf(Date.now());
    return await readLedger(db, platform.usageTable, tenantId, today, today);
  } finally {
    db.destroy();
  }
}
