/**
 * A stream still running when its function must end (issue 9, item 5): the chat function's time is
 * the streamed integration's timeout (shortened here to 8 s, so its stream deadline, 5 s before, is
 * at 3 s); the client gets the chunks produced so far, then a model_timeout error event, and the call
 * is charged only the tokens produced, its reservation's rest refunded.
 */
import type { Platform } from "@atrium/local/platform";
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import type { GatedModel } from "../support/gated-model";
import { GATED_MODEL, useGatedPlatform } from "../support/gated-platform";
import type { Json } from "../support/http";
import { captureStreamReports } from "../support/stream-reports";
import { onboard, openaiFor, postChat, promptReservation, sseData, usageOf } from "../support/tenant-calls";

let platform: Platform;
let gated: GatedModel;

const MODEL = "llama-3.1-8b-instruct";
/** Held after its first tokens until the test lets it go: a model that outlasts any deadline. */
/** The reference model's pause between tokens: its ~35-token answers take about 9 s, past the 3 s deadline. */
const TOKEN_DELAY_MS = 250;

useGatedPlatform(
  (started) => {
    ({ platform, gated } = started);
  },
  { streamedIntegrationTimeoutMs: 8_000, tokenDelayMs: TOKEN_DELAY_MS },
);

// After the platform starts: its own capture of EMF lines (the local CloudWatch) then sits inside this one.
const reports = captureStreamReports();

/** The content deltas among a stream's chunks: one per token the model produced. */
const contentOf = (chunks: Json[]): string[] =>
  chunks.map((c) => c.choices?.[0]?.delta?.content).filter((text) => text !== undefined && text !== "");

describe("a stream past its function's deadline", () => {
  it("from a model that stalls: the tokens produced, a model_timeout event, the end; charged for those tokens", async () => {
    const tenant = await onboard(platform);
    const request = {
      model: GATED_MODEL,
      messages: [{ role: "user", content: "Stall after two tokens" }],
      max_tokens: 40,
      stream: true,
    };
    // The role event and two tokens, then nothing until the deadline has passed.
    const gate = gated.holdAfter(3);
    try {
      const response = await postChat(platform, tenant.apiKey, request);
      expect(response.status).toBe(200);
      const data = sseData(await response.text());
      expect(JSON.parse(data.at(-1) as string)).toEqual({
        error: { message: expect.any(String), type: "api_error", param: null, code: "model_timeout" },
      });
      const chunks: Json[] = data.slice(0, -1).map((d) => JSON.parse(d));
      expect(chunks[0].choices[0].delta.role).toBe("assistant");
      expect(contentOf(chunks)).toHaveLength(2);
      await gate.reached;

      expect(await reports.next(tenant.id)).toMatchObject({ model: GATED_MODEL, outcome: "timed_out" });
      expect(await usageOf(platform, tenant.apiKey)).toEqual({
        tokensUsed: promptReservation(request) + 2,
        inFlight: 0,
      });
    } finally {
      gate.release();
    }
  });

  it("from a slow model: some chunks, then an APIError (model_timeout) in the openai client; charged what it produced", async () => {
    const tenant = await onboard(platform);
    const openai = openaiFor(platform, tenant.apiKey);
    const request = {
      model: MODEL,
      messages: [{ role: "user" as const, content: "Take your time answering this one, please" }],
      max_tokens: 200,
    };
    const buffered = await openai.chat.completions.create(request);
    const before = await usageOf(platform, tenant.apiKey);

    const stream = await openai.chat.completions.create({ ...request, stream: true });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    let raised: unknown;
    try {
      for await (const chunk of stream) chunks.push(chunk);
    } catch (err) {
      raised = err;
    }
    expect(raised).toBeInstanceOf(OpenAI.APIError);
    expect(raised).toMatchObject({ code: "model_timeout", type: "api_error" });
    const produced = contentOf(chunks);
    expect(produced.length).toBeGreaterThan(0);
    expect(produced.length).toBeLessThan(buffered.usage?.completion_tokens ?? 0);
    expect(buffered.choices[0]?.message.content?.startsWith(produced.join(""))).toBe(true);

    expect(await reports.next(tenant.id)).toMatchObject({ model: MODEL, outcome: "timed_out" });
    const after = await usageOf(platform, tenant.apiKey);
    expect(after.tokensUsed - before.tokensUsed).toBe(promptReservation(request) + produced.length);
    expect(after.inFlight).toBe(0);
  });
});
