import { createHash } from "node:crypto";
import {
  apiKeyOfRequest,
  authorizationValues,
  bearerToken,
  generateApiKey,
  hashApiKey,
  isWellFormedApiKey,
} from "@atrium/core/api-key";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

describe("API keys", () => {
  it("have a recognisable prefix, 40 base62 characters, and a SHA-256 hash", () => {
    const key = generateApiKey();
    expect(key.plaintext).toMatch(/^atr_[0-9A-Za-z]{40}$/);
    expect(key.hash).toBe(createHash("sha256").update(key.plaintext).digest("hex"));
    expect(isWellFormedApiKey(key.plaintext)).toBe(true);
  });

  it("never repeat and spread over the whole alphabet", () => {
    const keys = Array.from({ length: 500 }, () => generateApiKey().plaintext);
    expect(new Set(keys).size).toBe(keys.length);
    const characters = new Set(keys.join("").slice(4 * 500));
    expect(characters.size).toBeGreaterThan(60);
  });

  it("show a hint that does not reveal the secret", () => {
    const key = generateApiKey();
    expect(key.hint).toMatch(/^atr_.{4}….{4}$/);
    expect(key.hint.length).toBeLessThan(key.plaintext.length / 2);
  });

  it("are refused when malformed", () => {
    for (const candidate of [
      "",
      "atr_short",
      `sk-${"a".repeat(40)}`,
      `atr_${"a".repeat(39)}!`,
      `atr_${"a".repeat(41)}`,
    ]) {
      expect(isWellFormedApiKey(candidate)).toBe(false);
    }
  });

  it("hash deterministically", () => {
    expect(hashApiKey("atr_x")).toBe(hashApiKey("atr_x"));
    expect(hashApiKey("atr_x")).not.toBe(hashApiKey("atr_y"));
  });
});

describe("bearerToken", () => {
  it("reads the key from an Authorization header", () => {
    expect(bearerToken("Bearer atr_abc")).toBe("atr_abc");
    expect(bearerToken("bearer   atr_abc ")).toBe("atr_abc");
  });

  it("returns nothing for absent or non-bearer credentials", () => {
    expect(bearerToken(undefined)).toBeUndefined();
    expect(bearerToken("Basic dXNlcjpwYXNz")).toBeUndefined();
    expect(bearerToken("Bearer")).toBeUndefined();
    expect(bearerToken("Bearer a b")).toBeUndefined();
  });
});

describe("the one API key of a request", () => {
  const a = generateApiKey().plaintext;
  const c = generateApiKey().plaintext;

  it("is read from any letter case of Authorization", () => {
    for (const name of ["Authorization", "authorization", "AUTHORIZATION", "aUtHoRiZaTiOn"]) {
      expect(apiKeyOfRequest({ headers: { [name]: `Bearer ${a}` } })).toBe(a);
      expect(apiKeyOfRequest({ multiValueHeaders: { [name]: [`Bearer ${a}`] } })).toBe(a);
    }
  });

  it("is none when more than one value arrives, in either map, in any case, even the same value twice", () => {
    const refused = [
      { headers: { Authorization: `Bearer ${c}`, authorization: `Bearer ${a}` } },
      {
        headers: { Authorization: `Bearer ${c}` },
        multiValueHeaders: { Authorization: [`Bearer ${a}`, `Bearer ${c}`] },
      },
      {
        headers: { Authorization: `Bearer ${a}` },
        multiValueHeaders: { Authorization: [`Bearer ${a}`, `Bearer ${a}`] },
      },
      { headers: { authorization: `Bearer ${a}` }, multiValueHeaders: { Authorization: [`Bearer ${c}`] } },
      // headers and multiValueHeaders disagreeing is two values, not one.
      { headers: { Authorization: `Bearer ${a}` }, multiValueHeaders: { Authorization: [`Bearer ${c}`] } },
      { headers: { Authorization: `Bearer ${a}, Bearer ${c}` } },
      { headers: { Authorization: `Bearer ${a},${c}` } },
      { headers: {} },
      { headers: null, multiValueHeaders: null },
    ];
    for (const request of refused) expect(apiKeyOfRequest(request)).toBeUndefined();
    expect(authorizationValues(refused[1] as (typeof refused)[number])).toEqual([
      `Bearer ${a}`,
      `Bearer ${c}`,
    ]);
  });

  it("property: a key is returned only when exactly one Authorization value was sent, and it is that value's", () => {
    const spelling = fc.constantFrom("Authorization", "authorization", "AUTHORIZATION", "AuThOrIzAtIoN");
    const sent = fc.array(
      fc.tuple(spelling, fc.constantFrom(`Bearer ${a}`, `Bearer ${c}`, "Bearer junk", "")),
      {
        maxLength: 4,
      },
    );
    const other = fc.dictionary(
      fc.constantFrom("constructor", "__proto__", "toString", "x-api-key", "content-type"),
      fc.string(),
    );
    fc.assert(
      fc.property(sent, other, (lines, extra) => {
        // As API Gateway builds them: each spelling apart, `headers` the last value of each.
        const multi = new Map<string, string[]>();
        for (const [name, value] of lines) multi.set(name, [...(multi.get(name) ?? []), value]);
        const request = {
          headers: { ...extra, ...Object.fromEntries([...multi].map(([n, v]) => [n, v.at(-1) ?? ""])) },
          multiValueHeaders: Object.fromEntries(multi),
        };
        const only = lines.length === 1 ? lines[0]?.[1] : undefined;
        const expected =
          only === `Bearer ${a}` || only === `Bearer ${c}` ? only.slice("Bearer ".length) : undefined;
        expect(apiKeyOfRequest(request)).toBe(expected);
      }),
      { numRuns: 500 },
    );
  });
});
