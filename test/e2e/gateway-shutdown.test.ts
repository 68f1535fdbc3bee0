/**
 * Closing the local platform's gateway, as API Gateway lets a deployment go: new connections are
 * refused at once, idle keep-alive connections closed, calls in flight answered (with
 * `connection: close`), then close resolves, whatever the clients do with their connections.
 */
import { Agent, request } from "node:http";
import { connect } from "node:net";
import type { Platform } from "@atrium/local/platform";
import { describe, expect, it } from "vitest";
import { useTestPlatform } from "../support/platform";

let platform: Platform;

useTestPlatform((started) => {
  platform = started;
});

interface Answer {
  status: number;
  connection: string | undefined;
  body: string;
  /** Resolves when the connection that carried the call is closed. */
  closed: Promise<void>;
}

/** One call through a keep-alive agent, which keeps the connection open afterwards unless told not to. */
function call(agent: Agent, method: string, path: string, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(`${platform.gatewayUrl}${path}`, {
      agent,
      method,
      headers: { authorization: `Bearer ${platform.demoTenant.apiKey}`, "content-type": "application/json" },
    });
    req.on("error", reject);
    req.on("response", (res) => {
      const socket = req.socket;
      const closed = new Promise<void>((done) => {
        if (!socket || socket.destroyed) done();
        else socket.once("close", () => done());
      });
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          connection: res.headers.connection,
          body: Buffer.concat(chunks).toString("utf8"),
          closed,
        }),
      );
    });
    req.end(body);
  });
}

const connectsTo = (url: string) =>
  new Promise<void>((resolve, reject) => {
    const { hostname, port } = new URL(url);
    const socket = connect(Number(port), hostname);
    socket.on("connect", () => {
      socket.destroy();
      resolve();
    });
    socket.on("error", reject);
  });

describe("gateway shutdown", () => {
  it("refuses new connections, closes idle keep-alive ones and answers a slow call in flight, then closes", async () => {
    const idleClient = new Agent({ keepAlive: true });
    const busyClient = new Agent({ keepAlive: true });
    try {
      // A client that keeps its connection open and idle, and never closes it by itself.
      const idle = await call(idleClient, "GET", "/v1/models");
      expect(idle.status).toBe(200);
      expect(idle.connection).not.toBe("close");

      // A keep-alive client whose call is slow: the model answers after an injected delay.
      const endpoint = platform.sharedEndpoints[0] as string;
      const model = platform.config.sharedEndpoints.find((e) => e.endpointName === endpoint)?.model;
      platform.sagemaker.injectFault(endpoint, { latencyMs: 1500, times: 1 });
      const before = platform.sagemaker.invocations(endpoint).length;
      const slow = call(
        busyClient,
        "POST",
        "/v1/chat/completions",
        JSON.stringify({ model, messages: [{ role: "user", content: "slow" }], max_tokens: 8 }),
      );
      // Recorded before the injected latency: the call is in flight from here on.
      await expect
        .poll(() => platform.sagemaker.invocations(endpoint).length, { interval: 10 })
        .toBe(before + 1);

      const closing = platform.gateway.close();
      await expect(connectsTo(platform.gatewayUrl)).rejects.toMatchObject({ code: "ECONNREFUSED" });
      await idle.closed;

      const answered = await slow;
      expect(answered.status).toBe(200);
      expect(JSON.parse(answered.body)).toMatchObject({ object: "chat.completion" });
      expect(answered.connection).toBe("close");
      await answered.closed;
      await closing;
    } finally {
      idleClient.destroy();
      busyClient.destroy();
    }
  });
});
