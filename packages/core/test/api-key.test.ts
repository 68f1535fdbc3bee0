import { createHash } from "node:crypto";
import { bearerToken, generateApiKey, hashApiKey, isWellFormedApiKey } from "@atrium/core/api-key";
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
