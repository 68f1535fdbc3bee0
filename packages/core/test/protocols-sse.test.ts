import { type SseEvent, SseReader } from "@atrium/core/protocols/sse";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const encoder = new TextEncoder();

/** Reads a stream given as byte chunks: the events dispatched and what end() reports. */
function readAll(chunks: Uint8Array[]): { events: SseEvent[]; unfinished: string | null } {
  const reader = new SseReader();
  const events = chunks.flatMap((chunk) => reader.push(chunk));
  return { events, unfinished: reader.end() };
}

const read = (text: string) => readAll([encoder.encode(text)]);

/** `bytes` cut at the given offsets (any, even inside a UTF-8 character). */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  return [0, ...at].map((start, i) => bytes.subarray(start, at[i] ?? bytes.length));
}

describe("reading server-sent events", () => {
  it("dispatches data on a blank line, with or without the space after the colon", () => {
    expect(read('data: {"a":1}\n\ndata:{"b":2}\n\n').events).toEqual([
      { kind: "data", data: '{"a":1}' },
      { kind: "data", data: '{"b":2}' },
    ]);
  });

  it("ends lines at \\n, \\r\\n or \\r, and joins an event's data lines with \\n", () => {
    expect(read("data: one\r\ndata: two\rdata:  three\n\r\n").events).toEqual([
      { kind: "data", data: "one\ntwo\n three" },
    ]);
  });

  it("skips comments, other fields and events without data; a bare `data` line is empty data", () => {
    const stream = ": keep-alive\n\nevent: token\nid: 3\nretry: 10\n\nevent: x\ndata\n\n";
    expect(read(stream).events).toEqual([{ kind: "data", data: "" }]);
  });

  it("recognises [DONE]", () => {
    expect(read("data: [DONE]\n\n").events).toEqual([{ kind: "done" }]);
  });

  it("keeps a \\r\\n split between two pushes as one line end", () => {
    const { events, unfinished } = readAll([
      encoder.encode("data: a\r"),
      encoder.encode("\n\r"),
      encoder.encode("\n"),
    ]);
    expect(events).toEqual([{ kind: "data", data: "a" }]);
    expect(unfinished).toBeNull();
  });

  it("reports an unfinished event at the end, and does not dispatch it", () => {
    expect(read('data: {"a":1}\n\ndata: {"b"')).toEqual({
      events: [{ kind: "data", data: '{"a":1}' }],
      unfinished: 'data: {"b"',
    });
    expect(read("data: whole line, no blank line\n")).toEqual({
      events: [],
      unfinished: "data: whole line, no blank line\n",
    });
    // The first byte of "é" only.
    expect(readAll([encoder.encode("data: caf"), encoder.encode("é").subarray(0, 1)]).unfinished).toBe(
      "data: caf\uFFFD",
    );
    expect(read("").unfinished).toBeNull();
  });
});

/** One event as a model could send it: data lines with their own line ends, maybe a comment or field. */
const eventArbitrary = fc.record({
  lines: fc.array(
    fc.string({ unit: "grapheme" }).map((line) => line.replace(/[\r\n]/g, "")),
    {
      minLength: 1,
      maxLength: 3,
    },
  ),
  lineEnd: fc.constantFrom("\n", "\r\n", "\r"),
  space: fc.boolean(),
  extra: fc.constantFrom("", ": comment", "event: message", "id: 7"),
});
type EventSpec = typeof eventArbitrary extends fc.Arbitrary<infer T> ? T : never;

function encode(event: EventSpec): string {
  const { lines, lineEnd, space, extra } = event;
  // Without the space, a line that starts with one would lose it: SSE strips one leading space.
  const dataLines = lines.map((line) => `data:${space || line.startsWith(" ") ? " " : ""}${line}`);
  return [...(extra ? [extra] : []), ...dataLines, ""].map((line) => line + lineEnd).join("");
}

function expected(event: EventSpec): SseEvent {
  const data = event.lines.join("\n");
  return data === "[DONE]" ? { kind: "done" } : { kind: "data", data };
}

describe("reassembly at any byte boundary", () => {
  it("gives back exactly the events sent, however their bytes are split", () => {
    fc.assert(
      fc.property(
        fc.array(eventArbitrary, { maxLength: 8 }),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 12 }),
        (events, done, cuts) => {
          const text = events.map(encode).join("") + (done ? "data: [DONE]\n\n" : "");
          const { events: read, unfinished } = readAll(split(encoder.encode(text), cuts));
          expect(read).toEqual([...events.map(expected), ...(done ? [{ kind: "done" }] : [])]);
          expect(unfinished).toBeNull();
        },
      ),
      { numRuns: 500 },
    );
  });

  it("reports a stream cut inside its last event, having dispatched only the events before it", () => {
    fc.assert(
      fc.property(
        fc.array(eventArbitrary, { maxLength: 5 }),
        eventArbitrary,
        fc.nat(),
        fc.array(fc.nat(), { maxLength: 6 }),
        (whole, last, cutAt, cuts) => {
          const lastBytes = encoder.encode(encode(last));
          // Cut before the final line end, so the last event never completes; a "\r\n" end cut between its two bytes does complete it.
          const keep = 1 + (cutAt % (lastBytes.length - (last.lineEnd === "\r\n" ? 2 : 1)));
          const bytes = Buffer.concat([
            encoder.encode(whole.map(encode).join("")),
            lastBytes.subarray(0, keep),
          ]);
          const { events, unfinished } = readAll(split(bytes, cuts));
          expect(events).toEqual(whole.map(expected));
          expect(unfinished).not.toBeNull();
        },
      ),
      { numRuns: 300 },
    );
  });
});
