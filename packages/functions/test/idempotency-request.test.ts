import { fingerprint, idempotencyKeyOf } from "@atrium/functions/lib/idempotency-request";
import type { APIGatewayProxyEvent } from "aws-lambda";
import { describe, expect, it } from "vitest";

function event(headers: Record<string, string[]>, overrides: Partial<APIGatewayProxyEvent> = {}) {
  return {
    httpMethod: "POST",
    resource: "/v1/models/{model}/invocations",
    pathParameters: { model: "m" },
    headers: Object.fromEntries(Object.entries(headers).map(([name, values]) => [name, values.at(-1)])),
    multiValueHeaders: headers,
    body: '{"inputs":"hi"}',
    isBase64Encoded: false,
    ...overrides,
  } as unknown as APIGatewayProxyEvent;
}

const refusal = (headers: Record<string, string[]>) => {
  try {
    idempotencyKeyOf(event(headers));
  } catch (err) {
    return err;
  }
  throw new Error("expected a refusal");
};

describe("the Idempotency-Key header", () => {
  it("is a token or a structured-field string, found in any case; absent means no key", () => {
    expect(idempotencyKeyOf(event({ "Idempotency-Key": ["8e03978e-40d5"] }))).toBe("8e03978e-40d5");
    expect(idempotencyKeyOf(event({ "idempotency-key": ['"8e03978e-40d5"'] }))).toBe("8e03978e-40d5");
    expect(idempotencyKeyOf(event({ "IDEMPOTENCY-KEY": ['"say \\"hi\\" \\\\ bye"'] }))).toBe(
      'say "hi" \\ bye',
    );
    expect(idempotencyKeyOf(event({ "content-type": ["application/json"] }))).toBeUndefined();
  });

  it("is refused with a 400 naming the header when empty, too long, not ASCII, or sent twice", () => {
    const cases: Record<string, string[]>[] = [
      { "Idempotency-Key": [""] },
      { "Idempotency-Key": ['""'] },
      { "Idempotency-Key": ["k".repeat(256)] },
      { "Idempotency-Key": ["clé"] },
      { "Idempotency-Key": ["a"], "idempotency-key": ["b"] },
      { "Idempotency-Key": ["a", "a"] },
    ];
    for (const headers of cases) {
      expect(refusal(headers), JSON.stringify(headers)).toMatchObject({
        status: 400,
        code: "invalid_idempotency_key",
        param: "Idempotency-Key",
      });
    }
    expect(idempotencyKeyOf(event({ "Idempotency-Key": ["k".repeat(255)] }))).toHaveLength(255);
  });
});

describe("a request's fingerprint", () => {
  const base = event({ "content-type": ["application/json"] });

  it("is the same for the same request, whatever the header names' case", () => {
    expect(fingerprint(event({ "Content-Type": ["application/json"] }), "k")).toBe(fingerprint(base, "k"));
  });

  it("changes with the body, the media types, the path parameters, the route and the key", () => {
    const variants = [
      event({ "content-type": ["application/json"] }, { body: '{"inputs":"ho"}' }),
      event({ "content-type": ["application/x+json"] }),
      event({ "content-type": ["application/json"], accept: ["text/plain"] }),
      event({ "content-type": ["application/json"] }, { pathParameters: { model: "n" } }),
      event({ "content-type": ["application/json"] }, { resource: "/v1/chat/completions" }),
    ];
    const prints = new Set([
      fingerprint(base, "k"),
      fingerprint(base, "other"),
      ...variants.map((v) => fingerprint(v, "k")),
    ]);
    expect(prints.size).toBe(variants.length + 2);
  });
});
