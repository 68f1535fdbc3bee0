/**
 * Streamed chat on the local platform, end to end: the official openai client asks for `stream: true`
 * through the API Gateway emulator's STREAM integration, the chat handler streams the SageMaker
 * emulator's InvokeEndpointWithResponseStream, and the meter charges what the model produced.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { type Platform, REPO_ROOT } from "@atrium/local/platform";
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { type ErrorBody, type Json, json } from "../support/http";
import { useTestPlatform } from "../support/platform";
import { onboard, openaiFor, postChat, sseData } from "../support/tenant-calls";

let platform: Platform;
useTestPlatform((started) => {
  platform = started;
});

const MODEL = "llama-3.1-8b-instruct";
const ENDPOINT = "atrium-shared-llama-8b";
/** The official Python openai client's venv, made by .ci/run (pip install openai). */
const PYTHON = join(REPO_ROOT, ".venv-py", "bin", "python");
const execFileAsync = promisify(execFile);

async function client(): Promise<OpenAI> {
  return openaiFor(platform, (await onboard(platform)).apiKey);
}

describe("stream: true through the official openai client", () => {
  it("streams OpenAI chunks whose text equals the buffered answer's, with the usage chunk when asked", async () => {
    const openai = await client();
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

  it("sends no usage chunk and no usage field when the client did not ask for usage", async () => {
    const { apiKey } = await onboard(platform);
    const request = {
      model: MODEL,
      messages: [{ role: "user" as const, content: "No usage, please" }],
      max_tokens: 16,
    };
    const buffered: Json = await json(await postChat(platform, apiKey, request));

    const response = await postChat(platform, apiKey, { ...request, stream: true });
    expect(response.status).toBe(200);
    const data = sseData(await response.text());
    expect(data.at(-1)).toBe("[DONE]");
    const chunks: Json[] = data.slice(0, -1).map((d) => JSON.parse(d));
    expect(chunks.length).toBeGreaterThan(2);
    for (const chunk of chunks) {
      expect(chunk.object).toBe("chat.completion.chunk");
      expect(chunk).not.toHaveProperty("usage");
      expect(chunk.choices).toHaveLength(1);
    }
    const text = chunks.map((c) => c.choices[0].delta.content ?? "").join("");
    expect(text).toBe(buffered.choices[0].message.content);
    expect(chunks.at(-1).choices[0].finish_reason).toBe(buffered.choices[0].finish_reason);

    // The openai client reads the same stream the same way: no chunk carries usage.
    const stream = await openaiFor(platform, apiKey).chat.completions.create({ ...request, stream: true });
    const clientChunks = [];
    for await (const chunk of stream) clientChunks.push(chunk);
    expect(clientChunks).toHaveLength(chunks.length);
    expect(clientChunks.every((c) => c.usage === undefined)).toBe(true);
  });

  it("answers with the event-stream type, the request id, the route and the rate-limit headers", async () => {
    const { apiKey } = await onboard(platform);
    const response = await postChat(platform, apiKey, {
      model: MODEL,
      messages: [{ role: "user", content: "Headers first" }],
      stream: true,
    });
    expect(response.status).toBe(200);
    const headers = Object.fromEntries(response.headers);
    expect(headers["content-type"]).toMatch(/^text\/event-stream/);
    expect(headers["cache-control"]).toBe("no-cache");
    expect(headers["x-request-id"]).toMatch(/\S/);
    expect(headers["x-atrium-route"]).toBe("shared");
    expect(headers).toMatchObject({
      "x-ratelimit-limit-requests": String(platform.config.tiers.pro?.limits.requestsPerMinute),
      "x-ratelimit-remaining-requests": expect.stringMatching(/^\d+$/),
      "x-ratelimit-reset-requests": expect.stringMatching(/^\d+(ms|s)$/),
      "x-ratelimit-limit-tokens": String(platform.config.tiers.pro?.limits.tokensPerMinute),
      "x-ratelimit-remaining-tokens": expect.stringMatching(/^\d+$/),
      "x-ratelimit-reset-tokens": expect.stringMatching(/^\d+(ms|s)$/),
    });
    expect(sseData(await response.text()).at(-1)).toBe("[DONE]");
  });
});

describe("a streamed call that fails before its first byte", () => {
  const streamed = (model = MODEL) => ({
    model,
    messages: [{ role: "user", content: "Refuse me" }],
    stream: true,
  });

  /** The answer is one JSON error body with its status, not an event stream. */
  async function expectJsonError(
    response: Response,
    status: number,
    code: string,
    param: string | null = null,
  ): Promise<void> {
    expect(response.status).toBe(status);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    const body = (await json(response)) as ErrorBody;
    expect(body).toEqual({
      error: { message: expect.any(String), type: expect.any(String), param, code },
    });
  }

  it("is a plain JSON 404 for an unknown model (NotFoundError in the client)", async () => {
    const { apiKey } = await onboard(platform);
    const response = await postChat(platform, apiKey, streamed("gpt-17"));
    await expectJsonError(response, 404, "model_not_found", "model");
    await expect(
      openaiFor(platform, apiKey).chat.completions.create({
        model: "gpt-17",
        messages: [{ role: "user", content: "hi" }],
        stream: true,
      }),
    ).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it("is a plain JSON 401 for a bad key (AuthenticationError in the client)", async () => {
    const badKey = `atr_${"z".repeat(40)}`;
    await expectJsonError(await postChat(platform, badKey, streamed()), 401, "invalid_api_key");
    await expect(
      openaiFor(platform, badKey).chat.completions.create({
        model: MODEL,
        messages: [{ role: "user", content: "hi" }],
        stream: true,
      }),
    ).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it("is a plain JSON 429 over a limit (RateLimitError in the client)", async () => {
    // A monthly budget smaller than any call's reservation: every call is over it.
    const { apiKey } = await onboard(platform, "pro", { monthlyTokens: 10 });
    await expectJsonError(await postChat(platform, apiKey, streamed()), 429, "insufficient_quota");
    await expect(
      openaiFor(platform, apiKey).chat.completions.create({
        model: MODEL,
        messages: [{ role: "user", content: "hi" }],
        stream: true,
      }),
    ).rejects.toBeInstanceOf(OpenAI.RateLimitError);
  });

  it("is a plain JSON 502 when the model's stream breaks before its first part", async () => {
    const { apiKey } = await onboard(platform);
    platform.sagemaker.injectFault(ENDPOINT, { streamError: "ModelStreamError", afterParts: 0, times: 1 });
    await expectJsonError(await postChat(platform, apiKey, streamed()), 502, "model_error");
  });
});

describe("a model that fails mid-stream", () => {
  // Seven payload parts: the emulator cuts every event in two, so the role event, two tokens and half a third.
  const FAULT = { streamError: "ModelStreamError", afterParts: 7, times: 1 } as const;
  const request = {
    model: MODEL,
    messages: [{ role: "user" as const, content: "Break halfway through" }],
    max_tokens: 32,
  };

  it("gives the client the first chunks, then an error the openai client raises as an APIError", async () => {
    const openai = await client();
    const buffered = await openai.chat.completions.create(request);
    platform.sagemaker.injectFault(ENDPOINT, FAULT);
    const stream = await openai.chat.completions.create({ ...request, stream: true });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    let raised: unknown;
    try {
      for await (const chunk of stream) chunks.push(chunk);
    } catch (err) {
      raised = err;
    }
    expect(raised).toBeInstanceOf(OpenAI.APIError);
    expect(raised).toMatchObject({ code: "model_error", type: "api_error" });
    expect(chunks[0]?.choices[0]?.delta.role).toBe("assistant");
    const texts = chunks.slice(1).map((c) => c.choices[0]?.delta.content ?? "");
    expect(texts).toHaveLength(2);
    expect(buffered.choices[0]?.message.content?.startsWith(texts.join(""))).toBe(true);
    expect(chunks.every((c) => c.choices[0]?.finish_reason === null)).toBe(true);
  });

  it("ends the stream right after the error event, without [DONE]", async () => {
    const { apiKey } = await onboard(platform);
    platform.sagemaker.injectFault(ENDPOINT, FAULT);
    const response = await postChat(platform, apiKey, { ...request, stream: true });
    expect(response.status).toBe(200);
    // text() resolves only once the stream has ended.
    const data = sseData(await response.text());
    expect(data).toHaveLength(4);
    expect(JSON.parse(data.at(-1) as string)).toEqual({
      error: { message: expect.stringContaining(MODEL), type: "api_error", param: null, code: "model_error" },
    });
    expect(data.slice(0, -1).map((d) => JSON.parse(d).object)).toEqual(
      Array(3).fill("chat.completion.chunk"),
    );
  });
});

describe("the official Python openai client", () => {
  // Streams a chat completion with the usage chunk and prints what it read.
  const script = `
import json, sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1], api_key=sys.argv[2], max_retries=0)
stream = client.chat.completions.create(**json.loads(sys.argv[3]), stream=True,
                                        stream_options={"include_usage": True})
text, usage, chunks = "", None, 0
for chunk in stream:
    chunks += 1
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    if chunk.usage is not None:
        usage = {k: getattr(chunk.usage, k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
print(json.dumps({"text": text, "usage": usage, "chunks": chunks}))
`;

  it.skipIf(!existsSync(PYTHON))(
    "streams unmodified: the same text and usage as the Node client's (no .venv-py: .ci/run makes it)",
    async () => {
      const { apiKey } = await onboard(platform);
      const request = {
        model: MODEL,
        messages: [{ role: "user" as const, content: "Stream to Python, ünïcödé included ✓" }],
        max_tokens: 40,
      };
      const openai = openaiFor(platform, apiKey);
      const buffered = await openai.chat.completions.create(request);
      const nodeStream = await openai.chat.completions.create({
        ...request,
        stream: true,
        stream_options: { include_usage: true },
      });
      let nodeChunks = 0;
      for await (const _ of nodeStream) nodeChunks += 1;

      const { stdout } = await execFileAsync(
        PYTHON,
        ["-c", script, `${platform.gatewayUrl}/v1`, apiKey, JSON.stringify(request)],
        { env: { PATH: process.env.PATH ?? "" } },
      );
      const python = JSON.parse(stdout) as { text: string; usage: unknown; chunks: number };
      expect(python.text).toBe(buffered.choices[0]?.message.content);
      expect(python.usage).toEqual({
        prompt_tokens: buffered.usage?.prompt_tokens,
        completion_tokens: buffered.usage?.completion_tokens,
        total_tokens: buffered.usage?.total_tokens,
      });
      expect(python.chunks).toBe(nodeChunks);
    },
  );
});
