import type { TierSpec } from "@atrium/core/config";
import {
  boundInvocation,
  isJsonMediaType,
  LENGTH_FIELDS,
  lengthBound,
  reportedUsage,
  SEQUENCE_FIELDS,
} from "@atrium/core/token-bound";
import { countTokens, invokeReferenceModel } from "@atrium/local/reference-model";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { refusal } from "./fixtures";

// Bounds well below the reference model's reply length (about 30 tokens), so an unbounded call shows.
const tier: TierSpec = {
  tenancy: "pool",
  limits: { requestsPerMinute: 60, tokensPerMinute: 6000, concurrency: 2, monthlyTokens: 100_000 },
  maxTokens: { default: 5, cap: 20 },
  rawCallTokens: 700,
  limiterFailMode: "closed",
  shareWeight: 1,
};

const bytes = (value: unknown) => Buffer.from(JSON.stringify(value));
const sent = (body: Buffer) => JSON.parse(body.toString("utf8"));

describe("JSON by media type", () => {
  it("is application/json and every type/subtype+json, in any case, whatever the parameters", () => {
    for (const type of [
      "application/json",
      "APPLICATION/JSON; charset=utf-8",
      "multipart/x+json",
      "image/x+json",
      "application/vnd.api+json",
      "Text/Anything+JSON ; q=1",
    ]) {
      expect(isJsonMediaType(type), type).toBe(true);
    }
    for (const type of [
      undefined,
      "",
      "text/plain",
      "application/octet-stream",
      "application/jsonl",
      "application/json-seq",
      "x+json",
      "/x+json",
      "image/+json",
      "text/json",
    ]) {
      expect(isJsonMediaType(type), String(type)).toBe(false);
    }
  });
});

describe("length fields", () => {
  it("are read together: the largest wins, none gives the tier's default, null counts as unset", () => {
    expect(lengthBound({}, tier)).toEqual({ maxTokens: 5, sequences: 1, field: null });
    expect(lengthBound({ max_tokens: null }, tier)).toEqual({ maxTokens: 5, sequences: 1, field: null });
    expect(lengthBound({ max_tokens: 1, parameters: { max_new_tokens: 12 } }, tier)).toEqual({
      maxTokens: 12,
      sequences: 1,
      field: "parameters.max_new_tokens",
    });
    expect(lengthBound({ max_completion_tokens: 9, max_new_tokens: 3, n: 4 }, tier)).toEqual({
      maxTokens: 9,
      sequences: 4,
      field: "max_completion_tokens",
    });
  });

  it("a small max_tokens cannot hide a large parameters.max_new_tokens: 400 naming the large one", () => {
    const err = refusal(() =>
      lengthBound({ inputs: "hi", max_tokens: 1, parameters: { max_new_tokens: 100000 } }, tier),
    );
    expect(err).toMatchObject({
      status: 400,
      code: "max_tokens_too_large",
      param: "parameters.max_new_tokens",
    });
    expect(err.message).toBe("parameters.max_new_tokens: 100000 is above this tier's cap of 20");
  });

  it("anything but a positive integer in any of them is a 400 naming that field", () => {
    const bad = ["100", 2.5, -1, 0, true, false, [], {}];
    for (const field of [...LENGTH_FIELDS, ...SEQUENCE_FIELDS]) {
      for (const value of bad) {
        const body = field.startsWith("parameters.")
          ? { inputs: "x", parameters: { [field.slice("parameters.".length)]: value } }
          : { [field]: value };
        const err = refusal(() => lengthBound(body, tier));
        expect(err, `${field} = ${JSON.stringify(value)}`).toMatchObject({ status: 400, param: field });
        expect(err.message.startsWith(`${field}: must be a positive integer`)).toBe(true);
      }
    }
  });
});

describe("bounding a raw invocation", () => {
  it("writes parameters.max_new_tokens and asks for details in a TGI body that sets no bound", () => {
    const call = boundInvocation(
      bytes({ inputs: "hello", parameters: { temperature: 0.5 } }),
      "image/x+json",
      tier,
    );
    const body = sent(call.body);
    expect(body).toEqual({
      inputs: "hello",
      parameters: { temperature: 0.5, max_new_tokens: 5, details: true },
    });
    expect(call).toMatchObject({ outputBound: 5, field: null });
    expect(call.reserved).toBe(call.body.length + 16 + 5);
  });

  it("writes max_tokens in a Messages body that sets none, and keeps a bound the body set", () => {
    const messages = [{ role: "user", content: "hi" }];
    expect(sent(boundInvocation(bytes({ messages }), "application/json", tier).body)).toEqual({
      messages,
      max_tokens: 5,
    });
    const set = boundInvocation(bytes({ messages, max_completion_tokens: 7 }), "multipart/x+json", tier);
    expect(sent(set.body)).toEqual({ messages, max_completion_tokens: 7, max_tokens: 7 });
    expect(set).toMatchObject({ outputBound: 7, field: "max_completion_tokens" });
  });

  it("writes both fields when a body could be read by either protocol", () => {
    const body = sent(boundInvocation(bytes({ inputs: "x", messages: [] }), "application/json", tier).body);
    expect(body).toMatchObject({ max_tokens: 5, parameters: { max_new_tokens: 5, details: true } });
  });

  it("reserves n outputs when a body asks for n", () => {
    const call = boundInvocation(bytes({ messages: [], max_tokens: 10, n: 3 }), "application/json", tier);
    expect(call.outputBound).toBe(30);
  });

  it("refuses a TGI body whose parameters is not an object", () => {
    const err = refusal(() =>
      boundInvocation(bytes({ inputs: "x", parameters: [1] }), "application/json", tier),
    );
    expect(err).toMatchObject({ status: 400, param: "parameters" });
  });

  it("sends a body it cannot read unchanged and reserves the tier's rawCallTokens", () => {
    const unreadable: [Buffer, string][] = [
      [Buffer.from('{"inputs": "x", "parameters": {"max_new_tokens": 100000}}'), "text/plain"],
      [Buffer.from("{not json"), "application/json"],
      [Buffer.from("[1, 2]"), "application/json"],
      [Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 1]), "image/jpeg"],
    ];
    for (const [body, type] of unreadable) {
      const call = boundInvocation(body, type, tier);
      expect(call.body.equals(body)).toBe(true);
      expect(call).toMatchObject({ reserved: 700, outputBound: 0, field: null });
    }
  });

  it("property: the reference model never produces more than the bound written into any readable body", () => {
    const lengthValue = fc.oneof(
      fc.integer({ min: 1, max: 40 }),
      fc.constant(null),
      fc.string({ maxLength: 3 }),
      fc.double(),
      fc.boolean(),
    );
    const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
    const text = fc.string({ minLength: 1, maxLength: 200 });
    const body = fc.record(
      {
        inputs: optional(text),
        messages: optional(
          fc.array(fc.record({ role: fc.constant("user"), content: text }), { minLength: 1, maxLength: 3 }),
        ),
        max_tokens: optional(lengthValue),
        max_completion_tokens: optional(lengthValue),
        max_new_tokens: optional(lengthValue),
        parameters: optional(
          fc.record(
            { max_new_tokens: optional(lengthValue), temperature: optional(fc.constant(0.5)) },
            { requiredKeys: [] },
          ),
        ),
      },
      { requiredKeys: [] },
    );
    const contentType = fc.constantFrom(
      "application/json",
      "multipart/x+json",
      "IMAGE/X+JSON; a=b",
      "text/plain",
    );
    fc.assert(
      fc.property(body, contentType, (raw, type) => {
        const json = JSON.parse(JSON.stringify(raw));
        let call: ReturnType<typeof boundInvocation>;
        try {
          call = boundInvocation(bytes(json), type, tier);
        } catch (err) {
          // A refusal is a 400 naming a length field.
          expect(err).toMatchObject({ status: 400 });
          expect([...LENGTH_FIELDS, "parameters"]).toContain((err as { param: string }).param);
          return;
        }
        expect(call.reserved).toBeGreaterThanOrEqual(call.outputBound);
        if (!isJsonMediaType(type)) {
          expect(call.reserved).toBe(tier.rawCallTokens);
          return;
        }
        expect(call.outputBound).toBeLessThanOrEqual(tier.maxTokens.cap);
        const reply = invokeReferenceModel({ endpointName: "e", body: call.body, contentType: type });
        if (reply.status !== 200) return;
        const parsed = JSON.parse(reply.body.toString("utf8"));
        const generated = Array.isArray(parsed)
          ? countTokens(parsed[0].generated_text)
          : (parsed.usage?.completion_tokens ?? 0);
        expect(generated).toBeLessThanOrEqual(call.outputBound);
      }),
      { numRuns: 500 },
    );
  });
});

describe("usage a reply reports", () => {
  const call = boundInvocation(bytes({ inputs: "hello" }), "application/json", tier);
  const reply = (value: unknown, type = "application/json") => reportedUsage(bytes(value), type, call);

  it("reads OpenAI's usage: total_tokens, else prompt plus completion", () => {
    expect(reply({ usage: { total_tokens: 42 } })).toBe(42);
    expect(reply({ usage: { prompt_tokens: 3, completion_tokens: 4 } })).toBe(7);
  });

  it("reads TGI's details: generated tokens (with best_of's) plus the prompt part of the reservation", () => {
    const prompt = call.reserved - call.outputBound;
    expect(reply([{ generated_text: "a b", details: { generated_tokens: 2 } }])).toBe(prompt + 2);
    expect(reply({ generated_text: "a", details: { generated_tokens: 1 } })).toBe(prompt + 1);
    const bestOf = {
      generated_tokens: 2,
      best_of_sequences: [{ generated_tokens: 3 }, { generated_tokens: 4 }],
    };
    expect(reply([{ generated_text: "a b", details: bestOf }])).toBe(prompt + 9);
  });

  it("says nothing when the reply reports nothing it can read", () => {
    expect(reply([{ generated_text: "no details" }])).toBeUndefined();
    expect(reply({ usage: { total_tokens: "42" } })).toBeUndefined();
    expect(reply({ usage: { total_tokens: 42 } }, "text/plain")).toBeUndefined();
    expect(reply([])).toBeUndefined();
    expect(reportedUsage(Buffer.from("{oops"), "application/json", call)).toBeUndefined();
  });
});
