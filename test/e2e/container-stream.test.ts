/**
 * A forwarded model container that streams the way vLLM, LMI and TGI's Messages API do on SageMaker
 * (server-sent events), written in 5-byte pieces so SageMaker's payload parts cut lines and UTF-8
 * characters anywhere: Atrium reassembles the events, streams the tenant OpenAI's chunks, always asks
 * the container for usage, and charges the container's own count.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Platform } from "@atrium/local/platform";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminCall, startTestPlatformWith, stopTestPlatform } from "../support/platform";
import { settledUsageOf } from "../support/tenant-calls";

const MODEL = "streaming-container";
const WORDS = ["Hé", "llo", " wörld", " 日本", "!"];
const USAGE = { prompt_tokens: 11, completion_tokens: WORDS.length, total_tokens: 11 + WORDS.length };

let container: Server;
let platform: Platform;
let dataDir: string;
const received: Record<string, unknown>[] = [];

/** vLLM's stream for a chat body: role, one chunk per token, finish, the usage chunk when asked, [DONE]. */
function vllmStream(body: Record<string, unknown>): string {
  const chunk = (choices: unknown[], usage?: unknown) =>
    `data: ${JSON.stringify({ id: "c", object: "chat.completion.chunk", created: 1, model: "m", choices, ...(usage ? { usage } : {}) })}\n\n`;
  const delta = (d: unknown, finish: string | null = null) =>
    chunk([{ index: 0, delta: d, finish_reason: finish }]);
  const includeUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage;
  return [
    delta({ role: "assistant", content: "" }),
    ...WORDS.map((word) => delta({ content: word })),
    delta({}, "stop"),
    includeUsage ? chunk([], USAGE) : "",
    "data: [DONE]\n\n",
  ].join("");
}

beforeAll(async () => {
  container = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (req.url === "/ping") return void res.end();
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    received.push(body);
    res.writeHead(200, { "content-type": "text/event-stream" });
    const bytes = Buffer.from(vllmStream(body));
    for (let at = 0; at < bytes.length; at += 5) {
      res.write(bytes.subarray(at, at + 5));
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    res.end();
  });
  await new Promise<void>((resolve) => container.listen(0, "127.0.0.1", resolve));
  const containerUrl = `http://127.0.0.1:${(container.address() as AddressInfo).port}`;
  const endpoint = { model: MODEL, endpointName: "atrium-shared-streaming-container", containerUrl };
  ({ platform, dataDir } = await startTestPlatformWith({ sharedEndpoints: [endpoint] }));
});

afterAll(async () => {
  await stopTestPlatform(platform, dataDir);
  await new Promise((resolve) => container?.close(resolve));
});

describe("a forwarded container that streams server-sent events", () => {
  it("streams through the openai client in OpenAI's chunks, charged the container's own usage", async () => {
    const { body } = await adminCall(platform, "POST", "/admin/tenants", { name: "c", tier: "pro" });
    const openai = new OpenAI({ apiKey: body.apiKey, baseURL: `${platform.gatewayUrl}/v1`, maxRetries: 0 });
    const stream = await openai.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    });
    let text = "";
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0]?.delta.content ?? "";
      expect(chunk).not.toHaveProperty("usage");
    }
    expect(text).toBe(WORDS.join(""));
    // The role chunk, one per word, the finish chunk: no usage chunk, as the client did not ask.
    expect(chunks).toBe(WORDS.length + 2);
    // The container was asked to stream and to report usage all the same.
    expect(received.at(-1)).toMatchObject({ stream: true, stream_options: { include_usage: true } });
    // The stream settles after its last byte: read once nothing is in flight.
    expect(await settledUsageOf(platform, body.apiKey)).toBe(USAGE.total_tokens);
  });
});
