/**
 * Raw streaming (POST /v1/models/{model}/invocations-response-stream) on the local platform: the
 * body goes through InvokeEndpointWithResponseStream bounded as raw invocations are, the model's
 * bytes come back unchanged as they are produced, and the call is charged what the model reports
 * or produced.
 */
import { promptTokenBound } from "@atrium/core/limits";
import { SseReader } from "@atrium/core/protocols/sse";
import type { Platform } from "@atrium/local/platform";
import { describe, expect, it } from "vitest";
import { errorOf, type Json, json } from "../support/http";
import { adminCall, useTestPlatform } from "../support/platform";
import { settledUsageOf } from "../support/tenant-calls";

let platform: Platform;
useTestPlatform((started) => {
  platform = started;
});

const MODEL = "llama-3.1-8b-instruct";
const ENDPOINT = "atrium-shared-llama-8b";

async function tenant(name: string): Promise<string> {
  const { status, body } = await adminCall(platform, "POST", "/admin/tenants", { name, tier: "pro" });
  expect(status).toBe(201);
  return body.apiKey;
}

const invoke = (apiKey: string, path: string, body: string) =>
  fetch(`${platform.gatewayUrl}/v1/models/${MODEL}/${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body,
  });

/** This month's tokens, once every call in flight (a stream settles after its last byte) has settled. */
const tokensUsed = (apiKey: string) => settledUsageOf(platform, apiKey);

/** The data of every server-sent event in a body, parsed. */
function events(text: string): Json[] {
  const reader = new SseReader();
  return reader
    .push(new TextEncoder().encode(text))
    .map((event) => (event.kind === "done" ? "[DONE]" : JSON.parse(event.data)));
}

describe("raw streaming invocations", () => {
  it("stream a Messages body's SSE unchanged, with usage asked for, and charge the model's count", async () => {
    const apiKey = await tenant("raw-streamer");
    const messages = [{ role: "user", content: "stream me raw" }];
    const buffered = await json(
      await invoke(apiKey, "invocations", JSON.stringify({ messages, max_tokens: 20 })),
    );
    const before = await tokensUsed(apiKey);

    const response = await invoke(
      apiKey,
      "invocations-response-stream",
      JSON.stringify({ messages, max_tokens: 20, stream: true }),
    );
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(response.headers.get("x-atrium-route")).toBe("shared");
    expect(response.headers.get("x-ratelimit-limit-requests")).not.toBeNull();
    const chunks = events(await response.text());
    expect(chunks.at(-1)).toBe("[DONE]");
    const text = chunks.map((c) => c.choices?.[0]?.delta?.content ?? "").join("");
    expect(text).toBe(buffered.choices[0].message.content);
    // Atrium wrote include_usage in: the model's own usage chunk comes back, and is what is charged.
    const usage = chunks.at(-2)?.usage;
    expect(usage).toEqual(buffered.usage);
    expect((await tokensUsed(apiKey)) - before).toBe(usage.total_tokens);
  });

  it("stream a TGI body's token events, charged the prompt bound plus the tokens generated", async () => {
    const apiKey = await tenant("tgi-streamer");
    const body = JSON.stringify({ inputs: "tgi raw", parameters: { max_new_tokens: 9 } });
    const bufferedResponse = await invoke(apiKey, "invocations", body);
    expect(bufferedResponse.status).toBe(200);
    const bufferedCharge = await tokensUsed(apiKey);

    const response = await invoke(apiKey, "invocations-response-stream", body);
    expect(response.status).toBe(200);
    const tokens = events(await response.text());
    const last = tokens.at(-1);
    expect(last?.details?.generated_tokens).toBe(tokens.length);
    // The same request charges the same, buffered or streamed.
    expect((await tokensUsed(apiKey)) - bufferedCharge).toBe(bufferedCharge);
  });

  it("answer an error before the first byte as JSON with its status, and refund it", async () => {
    const apiKey = await tenant("raw-errors");
    const unknown = await fetch(
      `${platform.gatewayUrl}/v1/models/no-such-model/invocations-response-stream`,
      {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: "{}",
      },
    );
    expect(unknown.status).toBe(404);
    expect((await errorOf(unknown)).code).toBe("model_not_found");

    platform.sagemaker.injectFault(ENDPOINT, { streamError: "ModelStreamError", afterParts: 0, times: 1 });
    const broken = await invoke(
      apiKey,
      "invocations-response-stream",
      JSON.stringify({ messages: [{ role: "user", content: "x" }], stream: true }),
    );
    expect(broken.status).toBe(502);
    expect((await errorOf(broken)).code).toBe("model_error");
    expect(await tokensUsed(apiKey)).toBe(0);
  });

  it("end a stream that breaks midway with an error event, charged the tokens produced", async () => {
    const apiKey = await tenant("raw-broken");
    platform.sagemaker.injectFault(ENDPOINT, { streamError: "ModelStreamError", afterParts: 4, times: 1 });
    const body = { messages: [{ role: "user", content: "break midway" }], max_tokens: 30, stream: true };
    const response = await invoke(apiKey, "invocations-response-stream", JSON.stringify(body));
    expect(response.status).toBe(200);
    const sent = events(await response.text());
    expect(sent.at(-1)).toMatchObject({ error: { code: "model_error" } });
    const produced = sent.filter((c) => (c.choices?.[0]?.delta?.content ?? "") !== "").length;
    expect(produced).toBeGreaterThan(0);
    // The prompt's part of the reservation (the body as sent, usage asked for) and one token per content chunk.
    const sentBody = JSON.stringify({ ...body, stream_options: { include_usage: true } });
    expect(await tokensUsed(apiKey)).toBe(promptTokenBound([sentBody]) + produced);
  });
});
