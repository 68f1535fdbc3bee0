/**
 * Idempotency-Key on the admin creates, through the local gateway: a retried POST /admin/tenants makes
 * one tenant and replays its key; key creation and rotation likewise; another body is 422. The CLI sends
 * a fresh key on every create and, when an answer is lost, retries with the same one.
 */
import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import { type Connection, callAdmin } from "@atrium/cli/connection";
import type { Platform } from "@atrium/local/platform";
import { describe, expect, it } from "vitest";
import { json } from "../support/http";
import { scanTable, useTestPlatform } from "../support/platform";

let platform: Platform;

useTestPlatform((started) => {
  platform = started;
});

async function admin(method: string, path: string, body?: unknown, key?: string) {
  const response = await fetch(`${platform.gatewayUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${platform.adminToken}`,
      "content-type": "application/json",
      ...(key === undefined ? {} : { "idempotency-key": key }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, headers: response.headers, body: await json(response) };
}

/** Tenants of that name, from the directory. */
async function tenantsNamed(name: string): Promise<string[]> {
  const { body } = await admin("GET", "/admin/tenants?limit=1000");
  return body.tenants.filter((t: { name: string }) => t.name === name).map((t: { id: string }) => t.id);
}

const chatStatus = async (apiKey: string) =>
  (
    await fetch(`${platform.gatewayUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "llama-3.1-8b-instruct", messages: [{ role: "user", content: "hi" }] }),
    })
  ).status;

describe("POST /admin/tenants", () => {
  it("retried with its key: one tenant, and the same tenant and working key in both answers", async () => {
    const name = `Once ${randomUUID()}`;
    const key = randomUUID();
    const first = await admin("POST", "/admin/tenants", { name, tier: "pro" }, key);
    expect(first.status).toBe(201);
    const again = await admin("POST", "/admin/tenants", { name, tier: "pro" }, key);
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(await tenantsNamed(name)).toEqual([first.body.tenant.id]);
    expect(await chatStatus(again.body.apiKey)).toBe(200);
    const trail = await admin("GET", `/admin/tenants/${first.body.tenant.id}/audit`);
    expect(trail.body.entries.map((e: { action: string }) => e.action)).toEqual(["tenant.create"]);

    const other = await admin("POST", "/admin/tenants", { name, tier: "free" }, key);
    expect(other.status).toBe(422);
    expect(other.body.error).toMatchObject({ code: "idempotency_key_reused", type: "invalid_request_error" });
  });

  it("without a key, a retry is a second tenant (what the header is for)", async () => {
    const name = `Twice ${randomUUID()}`;
    await admin("POST", "/admin/tenants", { name, tier: "pro" });
    await admin("POST", "/admin/tenants", { name, tier: "pro" });
    expect(await tenantsNamed(name)).toHaveLength(2);
  });

  it("keeps a refusal out: a 400 with a key can be corrected and sent again with the same key", async () => {
    const key = randomUUID();
    expect((await admin("POST", "/admin/tenants", { name: "Bad", tier: "platinum" }, key)).status).toBe(400);
    // A refused call kept nothing, so the key is free for the corrected request.
    expect((await admin("POST", "/admin/tenants", { name: "Good", tier: "pro" }, key)).status).toBe(201);
  });

  it("stores the reply sealed: neither the API key nor the tenant's name is readable in the table", async () => {
    const name = `Sealed ${randomUUID()}`;
    const created = await admin("POST", "/admin/tenants", { name, tier: "pro" }, randomUUID());
    const dump = JSON.stringify(await scanTable(platform, platform.idempotencyTable));
    expect(dump).toContain("ADMIN#");
    expect(dump).not.toContain(created.body.apiKey);
    expect(dump).not.toContain(name);
  });
});

describe("keys", () => {
  it("create and rotate, retried with their keys, make one key each and replay it", async () => {
    const created = await admin("POST", "/admin/tenants", { name: "Keys", tier: "pro" });
    const tenantId = created.body.tenant.id;
    const keysPath = `/admin/tenants/${tenantId}/keys`;
    const createKey = randomUUID();
    const made = await admin("POST", keysPath, undefined, createKey);
    expect(made.status).toBe(201);
    expect(await admin("POST", keysPath, undefined, createKey)).toMatchObject({
      status: 201,
      body: made.body,
    });

    const rotatePath = `${keysPath}/${created.body.key.keyId}/rotate`;
    const rotateKey = randomUUID();
    const rotated = await admin("POST", rotatePath, { graceSeconds: 60 }, rotateKey);
    expect(rotated.status).toBe(201);
    expect(await admin("POST", rotatePath, { graceSeconds: 60 }, rotateKey)).toMatchObject({
      status: 201,
      body: rotated.body,
    });
    expect((await admin("POST", rotatePath, { graceSeconds: 0 }, rotateKey)).status).toBe(422);

    const keys = await admin("GET", keysPath);
    expect(keys.body.keys).toHaveLength(3);
    expect(await chatStatus(rotated.body.apiKey)).toBe(200);
  });

  it("scopes a key to its tenant: the same key on two tenants' key creation makes a key for each", async () => {
    const a = (await admin("POST", "/admin/tenants", { name: "A", tier: "pro" })).body.tenant.id;
    const b = (await admin("POST", "/admin/tenants", { name: "B", tier: "pro" })).body.tenant.id;
    const key = randomUUID();
    const forA = await admin("POST", `/admin/tenants/${a}/keys`, undefined, key);
    const forB = await admin("POST", `/admin/tenants/${b}/keys`, undefined, key);
    expect([forA.status, forB.status]).toEqual([201, 201]);
    expect(forB.body.key.keyId).not.toBe(forA.body.key.keyId);
  });
});

describe("the CLI's admin calls", () => {
  it("send a fresh Idempotency-Key on every POST, none on reads", async () => {
    const seen: { method: string; key: string | undefined }[] = [];
    const proxy = await startProxy(async (method, key, forward) => {
      seen.push({ method, key });
      return forward();
    });
    try {
      const connection = connectionVia(proxy.url);
      await callAdmin(connection, "POST", "/admin/tenants", { name: "Cli 1", tier: "pro" });
      await callAdmin(connection, "POST", "/admin/tenants", { name: "Cli 2", tier: "pro" });
      await callAdmin(connection, "GET", "/admin/tenants?limit=1");
    } finally {
      await proxy.close();
    }
    const [one, two, read] = seen;
    expect(one?.key).toMatch(/^[0-9a-f-]{36}$/);
    expect(two?.key).toMatch(/^[0-9a-f-]{36}$/);
    expect(two?.key).not.toBe(one?.key);
    expect(read).toEqual({ method: "GET", key: undefined });
  });

  it("retry with the same key when an answer is lost: the tenant is created once", async () => {
    const name = `Lost answer ${randomUUID()}`;
    let attempts = 0;
    const proxy = await startProxy(async (_method, _key, forward) => {
      attempts += 1;
      const answer = await forward();
      // The platform did the work; the client never hears of it.
      return attempts === 1 ? undefined : answer;
    });
    try {
      const result = await callAdmin<{ tenant: { id: string } }>(
        connectionVia(proxy.url),
        "POST",
        "/admin/tenants",
        {
          name,
          tier: "pro",
        },
      );
      expect(attempts).toBe(2);
      expect(await tenantsNamed(name)).toEqual([result.tenant.id]);
    } finally {
      await proxy.close();
    }
  });
});

const connectionVia = (url: string): Connection => ({
  url,
  auth: { kind: "token", token: platform.adminToken },
  source: "test proxy",
});

type Answer = { status: number; headers: Headers; body: string };

/**
 * A proxy in front of the gateway: `decide` sees each call and answers it with what `forward` returned,
 * or, returning undefined, drops the connection without an answer.
 */
async function startProxy(
  decide: (
    method: string,
    key: string | undefined,
    forward: () => Promise<Answer>,
  ) => Promise<Answer | undefined>,
): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const headers = Object.fromEntries(
      Object.entries(req.headers).filter(
        ([name]) => !["host", "connection", "content-length"].includes(name),
      ),
    ) as Record<string, string>;
    const forward = async (): Promise<Answer> => {
      const response = await fetch(`${platform.gatewayUrl}${req.url}`, {
        method: req.method ?? "GET",
        headers,
        ...(body.length > 0 ? { body } : {}),
      });
      return { status: response.status, headers: response.headers, body: await response.text() };
    };
    const answer = await decide(
      req.method ?? "GET",
      req.headers["idempotency-key"] as string | undefined,
      forward,
    );
    if (!answer) {
      req.socket.destroy();
      return;
    }
    res.writeHead(answer.status, {
      "content-type": answer.headers.get("content-type") ?? "application/json",
    });
    res.end(answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
