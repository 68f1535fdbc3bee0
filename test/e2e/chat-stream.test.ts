/**
 * Streamed chat on the local platform, end to end: the official openai client asks for `stream: true`
 * through the API Gateway emulator's STREAM integration, the chat handler streams the SageMaker
 * emulator's InvokeEndpointWithResponseStream, and the meter charges what the model produced.
 */
import type { Platform } from "@atrium/local/platform";
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { adminCall, useTestPlatform } from "../support/platform";

let platform: Platform;
useTestPlatform((started) => {
  platform = started;
});

const MODEL = "llama-3.1-8b-instruct";
const client = (apiKey: string) =>
  new OpenAI({ apiKey, baseURL: `${platform.gatewayUrl}/v1`, maxRetries: 0 });

async function tenant(name: string): Promise<string> {
  const { status, body } = await adminCall(platform, "POST", "/admin/tenants", { name, tier: "pro" });
  expect(status).toBe(201);
  return body.apiKey;
}

describe("stream: true through the official openai client", () => {
  it("streams OpenAI chunks whose text equals the buffered answer's, with the usage chunk when asked", async () => {
    const openai = client(await tenant("streamer"));
    const messages = [{ role: "user" as const, content: "Tell me about streams" }];
    const buffered = await openai.chat.completions.create({ model: MODEL, messages, max_tokens: 24 });
    const stream = await openai.chat.completions.create({
      model: MODEL,
      messages,
      max_tokens: 24,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    expect(text).toBe(buffered.choices[0]?.message.content);
    expect(chunks[0]?.choices[0]?.delta.role).toBe("assistant");
    const last = chunks.at(-1);
    expect(last?.choices).toEqual([]);
    expect(last?.usage).toEqual(buffered.usage);
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe(buffered.choices[0]?.finish_reason);
  });
});
