/**
 * Streamed chat is metered exactly (issue 9, item 5), through the local gateway, the real handlers,
 * the SageMaker emulator and DynamoDB Local: a client that leaves is charged what the model produced,
 * a stream that breaks is charged the prompt and the tokens produced (the rest refunded, once), and
 * streamed and buffered calls of the same request cost the same. Each test waits on its stream's end
 * report, printed after the settle, so what it reads of the tenant's usage is final.
 */
import type { AccessLogEntry } from "@atrium/local/gateway";
import type { Platform } from "@atrium/local/platform";
import fc from "fast-check";
import type OpenAI from "openai";
import { describe, expect, it } from "vitest";
import type { GatedModel } from "../support/gated-model";
import { GATED_MODEL, useGatedPlatform } from "../support/gated-platform";
import { errorOf } from "../support/http";
import { captureStreamReports } from "../support/stream-reports";
import { onboard, openaiFor, postChat, promptReservation, sseData, usageOf } from "../support/tenant-calls";

let platform: Platform;
let gated: GatedModel;
const access: AccessLogEntry[] = [];

const MODEL = "llama-3.1-8b-instruct";
const ENDPOINT = "atrium-shared-llama-8b";

useGatedPlatform(
  (started) => {
    ({ platform, gated } = started);
  },
  { onAccess: (e) => access.push(e) },
);

// After the platform starts: its own capture of EMF lines (the local CloudWatch) then sits inside this one.
const reports = captureStreamReports();

describe("a client that disconnects after the first chunk", () => {
  it("is charged what the model produced, as the buffered call is, and frees its slot once the model is done", async () => {
    const tenant = await onboard(platform, "pro", { concurrency: 1 });
    const openai = openaiFor(platform, tenant.apiKey);
    const request = {
      model: GATED_MODEL,
      messages: [{ role: "user" as const, content: "Leave after the first chunk" }],
      max_tokens: 40,
    };
    const buffered = await openai.chat.completions.create(request);
    const before = await usageOf(platform, tenant.apiKey);
    expect(before.tokensUsed).toBe(buffered.usage?.total_tokens);

    // The model sends its role event and first token, then waits until the test lets it go on.
    const gate = gated.holdAfter(2);
    const logged = access.length;
    const stream = await openai.chat.completions.create({ ...request, stream: true });
    let firstText = "";
    for await (const chunk of stream) {
      firstText = chunk.choices[0]?.delta.content ?? "";
      if (firstText !== "") break; // leaving the loop aborts the request: the client is gone
    }
    expect(buffered.choices[0]?.message.content?.startsWith(firstText)).toBe(true);
    await gate.reached;

    // The model is still producing for nobody: the call still holds the tenant's only slot.
    const meanwhile = await postChat(platform, tenant.apiKey, { ...request, stream: true });
    expect(meanwhile.status).toBe(429);
    expect((await errorOf(meanwhile)).message).toMatch(/^Too many calls in flight at once: limit 1/);

    gate.release();
    // The function cannot see the client leave (as on Lambda): it reads the model to its end.
    expect(await reports.next(tenant.id)).toMatchObject({ model: GATED_MODEL, outcome: "completed" });
    const after = await usageOf(platform, tenant.apiKey);
    expect(after.tokensUsed - before.tokensUsed).toBe(buffered.usage?.total_tokens);
    expect(after.inFlight).toBe(0);
    // The gateway saw the client leave mid-stream (the 429 above is its other call since).
    const since = access.slice(logged).filter((e) => e.path === "/v1/chat/completions");
    expect(since.map((e) => [e.status, e.stream])).toEqual([
      [429, "completed"],
      [200, "client_gone"],
    ]);

    // The slot is free again.
    const next = await openai.chat.completions.create(request);
    expect(next.choices[0]?.message.content).toBe(buffered.choices[0]?.message.content);
  });
});

describe("a stream that fails midway", () => {
  it.each([
    ["ModelStreamError", "model_error"],
    ["InternalStreamFailure", "upstream_error"],
  ] as const)(
    "(%s) is charged the prompt and the tokens produced, the rest refunded, once",
    async (streamError, code) => {
      const tenant = await onboard(platform);
      const request = {
        model: MODEL,
        messages: [{ role: "user", content: `Break the stream with ${streamError}` }],
        max_tokens: 32,
        stream: true,
      };
      // Seven payload parts: the emulator cuts every event in two, so the role event, two tokens and half a third.
      platform.sagemaker.injectFault(ENDPOINT, { streamError, afterParts: 7, times: 1 });
      const response = await postChat(platform, tenant.apiKey, request);
      expect(response.status).toBe(200);
      const data = sseData(await response.text());
      expect(JSON.parse(data.at(-1) as string).error.code).toBe(code);
      const produced = data
        .slice(0, -1)
        .map((d) => JSON.parse(d).choices[0].delta.content)
        .filter((text) => text !== undefined && text !== "");
      expect(produced).toHaveLength(2);

      expect(await reports.next(tenant.id)).toMatchObject({ outcome: "failed" });
      const charged = promptReservation(request) + produced.length;
      expect(await usageOf(platform, tenant.apiKey)).toEqual({ tokensUsed: charged, inFlight: 0 });
      expect(charged).toBeLessThan(promptReservation(request) + request.max_tokens);

      // Settled once: the next call is charged on top of it, and nothing else moves.
      const openai = openaiFor(platform, tenant.apiKey);
      const stream = await openai.chat.completions.create({
        model: MODEL,
        messages: [{ role: "user", content: "And now a whole one" }],
        stream: true,
        stream_options: { include_usage: true },
      });
      let total = 0;
      for await (const chunk of stream) total += chunk.usage?.total_tokens ?? 0;
      expect(total).toBeGreaterThan(0);
      expect(await reports.next(tenant.id)).toMatchObject({ outcome: "completed" });
      expect(await usageOf(platform, tenant.apiKey)).toEqual({ tokensUsed: charged + total, inFlight: 0 });
    },
  );

  it("is not charged at all when it breaks before its first part (a plain JSON error)", async () => {
    const tenant = await onboard(platform);
    platform.sagemaker.injectFault(ENDPOINT, { streamError: "ModelStreamError", afterParts: 0, times: 1 });
    const response = await postChat(platform, tenant.apiKey, {
      model: MODEL,
      messages: [{ role: "user", content: "Fail at once" }],
      stream: true,
    });
    expect(response.status).toBe(502);
    // Refunded once the answer has left (ADR 0004, "Settle off the path"): nothing charged, no slot held.
    expect(await usageOf(platform, tenant.apiKey)).toEqual({ tokensUsed: 0, inFlight: 0 });
  });
});

describe("streamed and buffered calls of the same request", () => {
  const content = fc.string({ unit: "grapheme", minLength: 1, maxLength: 120 });
  const requests = fc.record({
    messages: fc.oneof(
      fc.tuple(content).map(([user]) => [{ role: "user" as const, content: user }]),
      fc.tuple(content, content).map(([system, user]) => [
        { role: "system" as const, content: system },
        { role: "user" as const, content: user },
      ]),
    ),
    max_tokens: fc.integer({ min: 1, max: 64 }),
    includeUsage: fc.boolean(),
  });

  it("are charged the same tokens", async () => {
    await fc.assert(
      fc.asyncProperty(requests, async ({ messages, max_tokens, includeUsage }) => {
        const request = { model: MODEL, messages, max_tokens };
        const buffering = await onboard(platform);
        const buffered = await openaiFor(platform, buffering.apiKey).chat.completions.create(request);

        const streaming = await onboard(platform);
        const stream = await openaiFor(platform, streaming.apiKey).chat.completions.create({
          ...request,
          stream: true,
          ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
        });
        const chunks: OpenAI.ChatCompletionChunk[] = [];
        for await (const chunk of stream) chunks.push(chunk);
        expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe(
          buffered.choices[0]?.message.content,
        );
        if (includeUsage) expect(chunks.at(-1)?.usage).toEqual(buffered.usage);
        expect(await reports.next(streaming.id)).toMatchObject({ outcome: "completed" });

        const streamedUsage = await usageOf(platform, streaming.apiKey);
        const bufferedUsage = await usageOf(platform, buffering.apiKey);
        expect(streamedUsage).toEqual({ tokensUsed: buffered.usage?.total_tokens, inFlight: 0 });
        expect(streamedUsage).toEqual(bufferedUsage);
      }),
      { numRuns: 10 },
    );
  });
});
