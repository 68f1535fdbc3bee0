/**
 * AWS event-stream framing: what encodeMessage writes, MessageDecoder reads back, however TCP cuts
 * the bytes; a changed byte or a stream cut inside a message is an EventStreamError, never a message.
 * (The AWS SDK reads the emulator's encoding in packages/local/test/sagemaker-stream.test.ts.)
 */
import { crc32 } from "node:zlib";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type EventMessage,
  EventStreamError,
  encodeHeaders,
  encodeMessage,
  MessageDecoder,
} from "../src/event-stream";

const message = fc.record({
  headers: fc.dictionary(fc.string({ minLength: 1, maxLength: 20 }), fc.string({ maxLength: 40 }), {
    maxKeys: 4,
  }),
  payload: fc.uint8Array({ maxLength: 300 }),
});

/** `bytes` delivered in pieces cut at `cuts` (offsets, any order, duplicates allowed). */
async function* pieces(bytes: Buffer, cuts: number[]): AsyncGenerator<Uint8Array> {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  let from = 0;
  for (const to of [...at, bytes.length]) {
    if (to > from) yield bytes.subarray(from, to);
    from = Math.max(from, to);
  }
}

async function decodeAll(source: AsyncIterable<Uint8Array>): Promise<EventMessage[]> {
  const decoder = new MessageDecoder();
  const decoded: EventMessage[] = [];
  for await (const chunk of source) {
    for (const m of decoder.push(chunk))
      decoded.push({ headers: m.headers, payload: Buffer.from(m.payload) });
  }
  decoder.end();
  return decoded;
}

describe("event-stream framing", () => {
  it("decodes every message encoded, whatever the cuts", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(message, { maxLength: 5 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        async (messages, cuts) => {
          const bytes = Buffer.concat(
            messages.map((m) => encodeMessage(encodeHeaders(m.headers), m.payload)),
          );
          const decoded = await decodeAll(pieces(bytes, cuts));
          expect(decoded).toEqual(
            messages.map((m) => ({ headers: m.headers, payload: Buffer.from(m.payload) })),
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it("refuses a message with any one byte changed", async () => {
    await fc.assert(
      fc.asyncProperty(message, fc.nat(), fc.integer({ min: 1, max: 255 }), async (m, at, flip) => {
        const bytes = Buffer.from(encodeMessage(encodeHeaders(m.headers), m.payload));
        const i = at % bytes.length;
        bytes[i] = (bytes[i] as number) ^ flip;
        await expect(decodeAll(pieces(bytes, []))).rejects.toBeInstanceOf(EventStreamError);
      }),
      { numRuns: 300 },
    );
  });

  it("reads a header named __proto__ as a header, leaving the headers' prototype alone", async () => {
    const headers = JSON.parse('{"__proto__":"x",":event-type":"PayloadPart"}') as Record<string, string>;
    const [decoded] = await decodeAll(pieces(encodeMessage(encodeHeaders(headers), Buffer.from("p")), []));
    expect(Object.getPrototypeOf(decoded?.headers)).toBe(Object.prototype);
    expect(Object.entries(decoded?.headers ?? {})).toEqual([
      ["__proto__", "x"],
      [":event-type", "PayloadPart"],
    ]);
  });

  it("refuses a stream that ends inside a message", async () => {
    const bytes = encodeMessage(encodeHeaders({ ":event-type": "PayloadPart" }), Buffer.from("hello"));
    for (const end of [1, 8, 12, bytes.length - 1]) {
      await expect(decodeAll(pieces(bytes.subarray(0, end), []))).rejects.toBeInstanceOf(EventStreamError);
    }
  });

  it("skips the header types SageMaker does not send, reading the strings around them", async () => {
    // A boolean (type 0) and an int32 (type 4) header between two strings, framed by hand.
    const headers = Buffer.concat([
      Buffer.from([2, ...Buffer.from("a1"), 7, 0, 1, ...Buffer.from("x")]),
      Buffer.from([1, ...Buffer.from("b"), 0]),
      Buffer.from([1, ...Buffer.from("c"), 4, 0, 0, 0, 9]),
      Buffer.from([2, ...Buffer.from("z9"), 7, 0, 2, ...Buffer.from("ok")]),
    ]);
    const framed = frame(headers, Buffer.from("p"));
    expect(await decodeAll(pieces(framed, [3, 17]))).toEqual([
      { headers: { a1: "x", z9: "ok" }, payload: Buffer.from("p") },
    ]);
  });
});

/** A message with raw header bytes, its lengths and checksums computed as encodeMessage does. */
function frame(headers: Buffer, payload: Buffer): Buffer {
  const total = 12 + headers.length + payload.length + 4;
  const out = Buffer.alloc(total);
  out.writeUInt32BE(total, 0);
  out.writeUInt32BE(headers.length, 4);
  out.writeUInt32BE(crc32(out.subarray(0, 8)), 8);
  headers.copy(out, 12);
  payload.copy(out, 12 + headers.length);
  out.writeUInt32BE(crc32(out.subarray(0, total - 4)), total - 4);
  return out;
}
