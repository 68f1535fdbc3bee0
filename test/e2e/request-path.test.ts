/**
 * The whole request path on the local platform: the official openai client → API Gateway emulator →
 * the real authorizer and handlers → the AWS SDK → SageMaker Runtime emulator; tenants in DynamoDB Local.
 */
import { createHash } from "node:crypto";
import type { Platform } from "@atrium/local/platform";
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { errorOf, json } from "../support/http";
import { adminCall, useTestPlatform } from "../support/platform";

let platform: Platform;

useTestPlatform((started) => {
  platform = started;
});

const SHARED_MODEL = "llama-3.1-8b-instruct";

function client(apiKey: string) {
  return new OpenAI({ apiKey, baseURL: `${platform.gatewayUrl}/v1`, maxRetries: 0 });
}

const admin = (path: string, body: unknown, token = platform.adminToken) =>
  adminCall(platform, "POST", path, body, token);

async function createTenant(name: string, tier: string): Promise<{ id: string; apiKey: string }> {
  const { status, body } = await admin("/admin/tenants", { name, tier });
  expect(status).toBe(201);
  return { id: body.tenant.id, apiKey: body.apiKey };
}

function post(path: string, apiKey: string | undefined, body: string, contentType = "application/json") {
  return fetch(`${platform.gatewayUrl}${path}`, {
    method: "POST",
    headers: { ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}), "content-type": contentType },
    body,
  });
}

const chatBody = (model: string, content = "Hello") =>
  JSON.stringify({ model, messages: [{ role: "user", content }] });

describe("a tenant with an API key", () => {
  it("gets a chat completion through the official openai client, with usage and Atrium's headers", async () => {
    const openai = client(platform.demoTenant.apiKey);
    const { data, response } = await openai.chat.completions
      .create({
        model: SHARED_MODEL,
        messages: [{ role: "user", content: "What is Atrium?" }],
        max_tokens: 50,
      })
      .withResponse();

    expect(data.object).toBe("chat.completion");
    expect(data.model).toBe(SHARED_MODEL);
    expect(data.choices[0]?.message.content).toContain("What is Atrium");
    expect(data.usage?.prompt_tokens).toBeGreaterThan(0);
    expect(data.usage?.total_tokens).toBe(
      (data.usage?.prompt_tokens ?? 0) + (data.usage?.completion_tokens ?? 0),
    );
    expect(response.headers.get("x-atrium-route")).toBe("shared");
    expect(response.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    expect(Number(response.headers.get("x-atrium-overhead-ms"))).toBeGreaterThanOrEqual(0);
  });

  it("is cut at max_tokens with finish_reason length", async () => {
    const completion = await client(platform.demoTenant.apiKey).chat.completions.create({
      model: SHARED_MODEL,
      messages: [{ role: "user", content: "Tell me a long story" }],
      max_tokens: 3,
    });
    expect(completion.usage?.completion_tokens).toBe(3);
    expect(completion.choices[0]?.finish_reason).toBe("length");
  });

  it("lists only the models it may use", async () => {
    const models = await client(platform.demoTenant.apiKey).models.list();
    expect(models.data.map((m) => m.id).sort()).toEqual(
      platform.config.sharedEndpoints.map((e) => e.model).sort(),
    );
  });

  it("invokes a model raw: JSON passes through as sent", async () => {
    const response = await post(
      `/v1/models/${SHARED_MODEL}/invocations`,
      platform.demoTenant.apiKey,
      '{"inputs":"Hi"}',
    );
    expect(response.status).toBe(200);
    expect(response.headers.get("x-atrium-route")).toBe("shared");
    const body = await json(response);
    expect(body[0].generated_text).toEqual(expect.any(String));
  });

  it("invokes a model raw: binary bodies arrive byte for byte", async () => {
    const bytes = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7) % 256));
    const response = await fetch(`${platform.gatewayUrl}/v1/models/${SHARED_MODEL}/invocations`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${platform.demoTenant.apiKey}`,
        "content-type": "application/octet-stream",
      },
      body: bytes,
    });
    expect(response.status).toBe(200);
    const body = await json(response);
    expect(body.bytes).toBe(bytes.length);
    expect(body.sha256).toBe(createHash("sha256").update(bytes).digest("hex"));
  });
});

describe("refusals", () => {
  it("401 for a missing, unknown or malformed key, in OpenAI's shape", async () => {
    for (const key of [undefined, `atr_${"x".repeat(40)}`, "not-a-key"]) {
      const response = await post("/v1/chat/completions", key, chatBody(SHARED_MODEL));
      expect(response.status).toBe(401);
      expect(await json(response)).toEqual({
        error: {
          message: expect.any(String),
          type: "authentication_error",
          param: null,
          code: "invalid_api_key",
        },
      });
    }
  });

  it("401 through the openai client as an AuthenticationError", async () => {
    const call = client(`atr_${"y".repeat(40)}`).chat.completions.create({
      model: SHARED_MODEL,
      messages: [{ role: "user", content: "hi" }],
    });
    await expect(call).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it("400 for malformed JSON and for invalid fields, naming the field", async () => {
    const malformed = await post("/v1/chat/completions", platform.demoTenant.apiKey, '{"model": "x", ');
    expect(malformed.status).toBe(400);
    expect(await errorOf(malformed)).toMatchObject({ type: "invalid_request_error", code: "invalid_json" });

    const missing = await post(
      "/v1/chat/completions",
      platform.demoTenant.apiKey,
      JSON.stringify({ model: SHARED_MODEL }),
    );
    expect(missing.status).toBe(400);
    expect((await errorOf(missing)).param).toBe("messages");

    // OpenAI refuses stream_options on a call that does not stream; so does Atrium.
    const options = await post(
      "/v1/chat/completions",
      platform.demoTenant.apiKey,
      JSON.stringify({
        model: SHARED_MODEL,
        messages: [{ role: "user", content: "hi" }],
        stream_options: { include_usage: true },
      }),
    );
    expect(options.status).toBe(400);
    expect((await errorOf(options)).param).toBe("stream_options");
  });

  it("404 for an unknown model and for an unknown route", async () => {
    const model = await post("/v1/chat/completions", platform.demoTenant.apiKey, chatBody("gpt-17"));
    expect(model.status).toBe(404);
    expect((await errorOf(model)).code).toBe("model_not_found");

    const route = await post("/v1/nowhere", platform.demoTenant.apiKey, "{}");
    expect(route.status).toBe(404);
    expect((await errorOf(route)).code).toBe("unknown_route");
  });

  it("403 for a suspended tenant (an explicit Deny from the authorizer)", async () => {
    const tenant = await createTenant("Suspended Co", "pro");
    await platform.tenantStore.setStatus(tenant.id, "suspended");
    const response = await post("/v1/chat/completions", tenant.apiKey, chatBody(SHARED_MODEL));
    expect(response.status).toBe(403);
    expect(await errorOf(response)).toMatchObject({ type: "permission_error", code: "access_denied" });
  });

  it("admin routes refuse callers without the admin credential", async () => {
    expect((await admin("/admin/tenants", { name: "x", tier: "pro" }, "wrong")).status).toBe(403);
    const anonymous = await post("/admin/tenants", undefined, JSON.stringify({ name: "x", tier: "pro" }));
    expect(anonymous.status).toBe(404);
    const tenantKeyAsAdmin = await admin(
      "/admin/tenants",
      { name: "x", tier: "pro" },
      platform.demoTenant.apiKey,
    );
    expect(tenantKeyAsAdmin.status).toBe(403);
  });
});

describe("tiers and isolation", () => {
  it("a silo tenant lands on its dedicated endpoint, never a shared one", async () => {
    const silo = await createTenant("Silo Corp", "enterprise");
    const endpointName = `${silo.id}-llama`;
    const added = await admin(`/admin/tenants/${silo.id}/endpoints`, { model: SHARED_MODEL, endpointName });
    expect(added.status).toBe(200);
    const sharedBefore = platform.sagemaker.invocations("atrium-shared-llama-8b").length;

    const { data, response } = await client(silo.apiKey)
      .chat.completions.create({ model: SHARED_MODEL, messages: [{ role: "user", content: "hi" }] })
      .withResponse();

    expect(response.headers.get("x-atrium-route")).toBe("dedicated");
    expect(data.choices[0]?.message.content).toContain(endpointName);
    expect(platform.sagemaker.invocations(endpointName)).toHaveLength(1);
    expect(platform.sagemaker.invocations("atrium-shared-llama-8b")).toHaveLength(sharedBefore);

    const other = await post("/v1/chat/completions", silo.apiKey, chatBody("mistral-7b-instruct"));
    expect(other.status).toBe(404);
    expect((await errorOf(other)).code).toBe("model_not_provisioned");
  });

  it("a pool tenant is refused another tenant's dedicated model, and that endpoint never sees the call", async () => {
    const silo = await createTenant("Private Model Inc", "enterprise");
    const endpointName = `${silo.id}-private`;
    await admin(`/admin/tenants/${silo.id}/endpoints`, { model: "private-finetune", endpointName });
    const pool = await createTenant("Curious Ltd", "free");

    const chat = await post("/v1/chat/completions", pool.apiKey, chatBody("private-finetune"));
    const raw = await post("/v1/models/private-finetune/invocations", pool.apiKey, '{"inputs":"x"}');
    const models = await client(pool.apiKey).models.list();

    expect(chat.status).toBe(404);
    expect((await errorOf(chat)).code).toBe("model_not_found");
    expect(raw.status).toBe(404);
    expect(models.data.map((m) => m.id)).not.toContain("private-finetune");
    expect(platform.sagemaker.invocations(endpointName)).toHaveLength(0);

    // The owner can use it.
    const own = await post("/v1/chat/completions", silo.apiKey, chatBody("private-finetune"));
    expect(own.status).toBe(200);
    expect(platform.sagemaker.invocations(endpointName)).toHaveLength(1);
  });

  it("one dedicated endpoint cannot be claimed by two tenants", async () => {
    const a = await createTenant("Owner A", "enterprise");
    const b = await createTenant("Owner B", "business");
    const endpointName = `${a.id}-exclusive`;
    expect((await admin(`/admin/tenants/${a.id}/endpoints`, { model: "m1", endpointName })).status).toBe(200);
    const second = await admin(`/admin/tenants/${b.id}/endpoints`, { model: "m1", endpointName });
    expect(second.status).toBe(409);
    expect(second.body.error.code).toBe("endpoint_already_dedicated");
  });
});
