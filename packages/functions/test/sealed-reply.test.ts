import { openReply, sealReply } from "@atrium/functions/lib/sealed-reply";
import { describe, expect, it } from "vitest";

const reply = {
  statusCode: 201,
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ apiKey: "atr_0123456789abcdefghijABCDEFGHIJ0123456789" }),
};

describe("a sealed idempotent reply", () => {
  it("opens with the same Idempotency-Key and scope, and reads as nothing without them", () => {
    const sealed = sealReply(reply, "key-1", "TENANT#t1#\ntenant");
    expect(openReply(sealed, "key-1", "TENANT#t1#\ntenant")).toEqual(reply);
    expect(sealed).not.toContain("atr_");
    expect(Buffer.from(sealed, "base64").toString("latin1")).not.toContain("apiKey");
    expect(() => openReply(sealed, "key-2", "TENANT#t1#\ntenant")).toThrow();
    expect(() => openReply(sealed, "key-1", "TENANT#t2#\ntenant")).toThrow();
  });

  it("refuses a sealed reply that was altered", () => {
    const bytes = Buffer.from(sealReply(reply, "k", "s"), "base64");
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 1;
    expect(() => openReply(bytes.toString("base64"), "k", "s")).toThrow();
  });

  it("seals the same reply differently each time (a fresh IV)", () => {
    expect(sealReply(reply, "k", "s")).not.toBe(sealReply(reply, "k", "s"));
  });
});
