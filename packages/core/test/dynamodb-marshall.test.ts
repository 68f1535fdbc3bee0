/**
 * DynamoDB marshalling: for the values Atrium stores, toItem writes what @aws-sdk/util-dynamodb's
 * marshall (removeUndefinedValues) writes, in wire JSON (binary as base64), and fromItem reads back what
 * its unmarshall reads, refusing the same numbers; what the SDK would guess at (a Date, a function, an
 * empty or mixed set) is an error, and `__proto__` is an ordinary member both ways.
 */

import {
  type AttributeValue,
  fromAttribute,
  fromItem,
  type Item,
  toAttribute,
  toItem,
} from "@atrium/core/dynamodb/marshall";
import type { AttributeValue as SdkAttributeValue } from "@aws-sdk/client-dynamodb";
import { convertToNative, marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const SDK_OPTIONS = { removeUndefinedValues: true };

const text = fc.oneof(
  fc.string(),
  fc.string({ unit: "grapheme" }),
  fc.string({ unit: "binary", maxLength: 6 }),
  fc.constant(""),
);
const key = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 8 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 4 }) },
  { weight: 2, arbitrary: fc.constantFrom("__proto__", "constructor", "toString", "hasOwnProperty", "") },
);
/** Finite doubles the SDK writes (beyond the safe integers it asks for a bigint; so does toAttribute). */
const safeDouble = fc.double({ noNaN: true, min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER });
const safeNumber = fc.oneof(fc.maxSafeInteger(), safeDouble);
/** Plain Uint8Arrays, and Buffers (which sit at an offset in Buffer's shared pool). */
const bytes = fc.oneof(
  fc.uint8Array({ maxLength: 40 }),
  fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
);
const scalar = fc.oneof(
  text,
  safeNumber,
  fc.boolean(),
  fc.constant(null),
  bytes,
  fc.uniqueArray(text, { minLength: 1, maxLength: 5 }).map((members) => new Set(members)),
  fc.uniqueArray(safeNumber, { minLength: 1, maxLength: 5 }).map((members) => new Set(members)),
  fc.array(bytes, { minLength: 1, maxLength: 3 }).map((members) => new Set(members)),
);
const tree = fc.letrec<{ value: unknown; list: unknown[]; map: Record<string, unknown> }>((tie) => ({
  value: fc.oneof({ depthSize: "small" }, scalar, tie("list"), tie("map")),
  list: fc.array(fc.option(tie("value"), { nil: undefined, freq: 6 }), { maxLength: 5 }),
  // Half of fast-check's dictionaries have a null prototype; both sides take them as maps.
  map: fc.dictionary(key, fc.option(tie("value"), { nil: undefined, freq: 6 }), { maxKeys: 5 }),
}));
const item = fc.dictionary(key, fc.option(tree.value, { nil: undefined, freq: 6 }), { maxKeys: 6 });

/** The SDK's in-memory AttributeValue as the wire carries it: B and BS as base64. */
function sdkToWire(value: SdkAttributeValue): AttributeValue {
  if (value.B !== undefined) return { B: Buffer.from(value.B).toString("base64") };
  if (value.BS !== undefined) return { BS: value.BS.map((b) => Buffer.from(b).toString("base64")) };
  if (value.L !== undefined) return { L: value.L.map(sdkToWire) };
  if (value.M !== undefined) return { M: sdkMapToWire(value.M) };
  return value as AttributeValue;
}

function sdkMapToWire(map: Record<string, SdkAttributeValue>): Record<string, AttributeValue> {
  return Object.fromEntries(Object.entries(map).map(([name, value]) => [name, sdkToWire(value)]));
}

/*
 * The SDK mishandles two member names: it builds maps with `map[key] = ...`, so `__proto__` sets the
 * prototype instead of adding a member, and it tells a map by `value.constructor.name`, so a member
 * named `constructor` makes the object unsupported. So the SDK is given every member name prefixed with
 * "#", and ours are prefixed the same way before comparing: a bijection, nothing else changes.
 */
function prefixNames(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(prefixNames);
  if (isPlainObject(value)) {
    const prefixed: Record<string, unknown> = Object.create(Object.getPrototypeOf(value));
    for (const [name, member] of Object.entries(value)) prefixed[`#${name}`] = prefixNames(member);
    return prefixed;
  }
  return value;
}

function prefixAttribute(value: AttributeValue): AttributeValue {
  if ("L" in value) return { L: value.L.map(prefixAttribute) };
  if ("M" in value) return { M: prefixAttributeNames(value.M) };
  return value;
}

function prefixAttributeNames(map: Record<string, AttributeValue>): Record<string, AttributeValue> {
  return Object.fromEntries(Object.entries(map).map(([name, value]) => [`#${name}`, prefixAttribute(value)]));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** For comparing reads: binary as plain Uint8Arrays (the SDK hands back whatever it was given). */
function plainBytes(value: unknown): unknown {
  if (value instanceof Uint8Array) return Uint8Array.from(value);
  if (value instanceof Set) return new Set([...value].map(plainBytes));
  if (Array.isArray(value)) return value.map(plainBytes);
  if (isPlainObject(value)) {
    return Object.fromEntries(Object.entries(value).map(([name, member]) => [name, plainBytes(member)]));
  }
  return value;
}

/** What an item should read back as: no undefined anywhere, -0 as 0, binary as plain Uint8Arrays. */
function stored(value: unknown): unknown {
  if (Object.is(value, -0)) return 0;
  if (value instanceof Uint8Array) return Uint8Array.from(value);
  if (value instanceof Set) return new Set([...value].map(stored));
  if (Array.isArray(value)) return value.filter((element) => element !== undefined).map(stored);
  if (isPlainObject(value)) {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, member]) => member !== undefined)
        .map(([name, member]) => [name, stored(member)]),
    );
  }
  return value;
}

/** As the HTTP client sends and receives it. */
function overTheWire(value: Record<string, AttributeValue>): Record<string, AttributeValue> {
  return JSON.parse(JSON.stringify(value));
}

type Outcome = { value: unknown } | { threw: true };

function outcome(f: () => unknown): Outcome {
  try {
    return { value: f() };
  } catch {
    return { threw: true };
  }
}

describe("toItem and fromItem against @aws-sdk/util-dynamodb", () => {
  it("write what marshall writes, and read back what unmarshall reads", () => {
    fc.assert(
      fc.property(item, (value) => {
        const sdkItem = marshall(prefixNames(value) as Item, SDK_OPTIONS);
        const written = toItem(value);
        expect(prefixAttributeNames(written)).toEqual(sdkMapToWire(sdkItem));

        const read = fromItem(overTheWire(written));
        expect(prefixNames(read)).toEqual(plainBytes(unmarshall(sdkItem)));
        expect(read).toEqual(stored(value));
      }),
      { numRuns: 300 },
    );
  });

  it("refuse exactly the numbers marshall refuses, and write the rest as it does", () => {
    const number = fc.oneof(
      fc.double(),
      fc.constantFrom(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1, Number.MIN_SAFE_INTEGER - 1),
    );
    fc.assert(
      fc.property(number, (n) => {
        const ours = outcome(() => toAttribute(n));
        expect(ours).toEqual(outcome(() => marshall(n)));
        if ("threw" in ours) expect(() => toAttribute(n)).toThrow(RangeError);
      }),
      { numRuns: 300 },
    );
  });

  it("read a number string as unmarshall does, refusing exactly what it refuses", () => {
    const numberText = fc.oneof(
      fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }).map(String),
      fc.double({ noNaN: true }).map(String),
      fc
        .tuple(fc.stringMatching(/^-?[0-9]{1,25}$/), fc.stringMatching(/^[0-9]{1,12}$/))
        .map(([whole, fraction]) => `${whole}.${fraction}`),
      fc
        .tuple(fc.stringMatching(/^-?[0-9]{1,5}(\.[0-9]{1,5})?$/), fc.integer({ min: -400, max: 400 }))
        .map(([mantissa, exponent]) => `${mantissa}e${exponent}`),
    );
    fc.assert(
      fc.property(numberText, (N) => {
        const ours = outcome(() => fromAttribute({ N }));
        expect(ours).toEqual(outcome(() => convertToNative({ N })));
        if ("threw" in ours) expect(() => fromAttribute({ N })).toThrow(RangeError);
      }),
      { numRuns: 300 },
    );
  });

  it.each([
    ["9007199254740991", 9007199254740991],
    ["9007199254740993", 9007199254740993n],
    ["-9007199254740993", -9007199254740993n],
    ["1.5", 1.5],
    ["1e400", Number.POSITIVE_INFINITY],
    ["-0", -0],
    ["12345678901234567890.5", "throws"],
    ["1e20", "throws"],
  ])("reads N %s as unmarshall does: %s", (N, expected) => {
    const sdk = outcome(() => unmarshall({ n: { N } }).n);
    expect(outcome(() => fromItem({ n: { N } }).n)).toEqual(sdk);
    if (expected === "throws") {
      expect(sdk).toEqual({ threw: true });
      expect(() => fromAttribute({ N })).toThrow(RangeError);
    } else {
      expect(sdk).toEqual({ value: expected });
    }
    expect(outcome(() => fromAttribute({ NS: [N] }))).toEqual(outcome(() => convertToNative({ NS: [N] })));
  });
});

describe("toItem", () => {
  it("writes each kind of value as DynamoDB's wire JSON", () => {
    expect(
      toItem({
        pk: "tenant#1",
        empty: "",
        count: 42,
        ratio: -0.25,
        big: 2n ** 60n,
        ok: true,
        none: null,
        bytes: new Uint8Array([0, 1, 254, 255]),
        buffer: Buffer.from("hi"),
        tags: new Set(["a", "b"]),
        scores: new Set([1, 2.5, 3n]),
        blobs: new Set([new Uint8Array([1]), new Uint8Array([2])]),
        list: [1, "x", [true], { a: null }],
        nested: { a: { b: "c" } },
      }),
    ).toEqual({
      pk: { S: "tenant#1" },
      empty: { S: "" },
      count: { N: "42" },
      ratio: { N: "-0.25" },
      big: { N: "1152921504606846976" },
      ok: { BOOL: true },
      none: { NULL: true },
      bytes: { B: "AAH+/w==" },
      buffer: { B: "aGk=" },
      tags: { SS: ["a", "b"] },
      scores: { NS: ["1", "2.5", "3"] },
      blobs: { BS: ["AQ==", "Ag=="] },
      list: { L: [{ N: "1" }, { S: "x" }, { L: [{ BOOL: true }] }, { M: { a: { NULL: true } } }] },
      nested: { M: { a: { M: { b: { S: "c" } } } } },
    });
  });

  it("leaves out undefined members, elements (and holes) and set members", () => {
    // biome-ignore lint/suspicious/noSparseArray: a hole is an undefined element too
    const list = [1, undefined, , 2];
    expect(toItem({ a: undefined, b: { c: undefined, d: 1 }, list, set: new Set(["x", undefined]) })).toEqual(
      {
        b: { M: { d: { N: "1" } } },
        list: { L: [{ N: "1" }, { N: "2" }] },
        set: { SS: ["x"] },
      },
    );
  });

  it.each([
    ["NaN", Number.NaN],
    ["Infinity", Number.POSITIVE_INFINITY],
    ["-Infinity", Number.NEGATIVE_INFINITY],
    ["2^53", 2 ** 53],
    ["-(2^53)", -(2 ** 53)],
    ["1e300", 1e300],
  ])("refuses the number %s with a RangeError, at any depth", (_, n) => {
    expect(() => toAttribute(n)).toThrow(RangeError);
    expect(() => toItem({ a: [{ b: n }] })).toThrow(RangeError);
    expect(() => toItem({ a: new Set([1, n]) })).toThrow(RangeError);
  });

  class Point {
    x = 1;
  }
  it.each([
    ["a function", () => 1, /function/],
    ["a symbol", Symbol("s"), /symbol/],
    ["a Date", new Date(0), /Date/],
    ["a Map", new Map([["a", 1]]), /Map/],
    ["a class instance", new Point(), /Point/],
    ["an Int16Array", new Int16Array(2), /Int16Array/],
    ["a boxed string", new String("s"), /String/],
    ["undefined", undefined, /undefined/],
  ])("refuses %s with a TypeError naming its type", (_, value, name) => {
    expect(() => toAttribute(value)).toThrow(TypeError);
    expect(() => toAttribute(value)).toThrow(name);
    if (value !== undefined) {
      expect(() => toItem({ a: value })).toThrow(name);
      expect(() => toItem({ a: [value] })).toThrow(name);
    }
  });

  it.each([
    ["an empty set", new Set()],
    ["a set of only undefined", new Set([undefined])],
    ["a mixed set", new Set(["a", 1])],
    ["a set of numbers and binary", new Set([1, new Uint8Array(1)])],
    ["a set of objects", new Set([{}])],
    ["a set of booleans", new Set([true])],
  ])("refuses %s with a TypeError", (_, set) => {
    expect(() => toAttribute(set)).toThrow(TypeError);
    expect(() => toItem({ a: set })).toThrow(TypeError);
  });

  it("takes an item only as a plain object", () => {
    expect(() => toItem([] as unknown as Item)).toThrow(TypeError);
    expect(() => toItem(null as unknown as Item)).toThrow(TypeError);
    expect(() => toItem(new Date() as unknown as Item)).toThrow(/Date/);
    expect(toItem(Object.assign(Object.create(null), { a: 1 }))).toEqual({ a: { N: "1" } });
  });
});

describe("fromItem", () => {
  it("reads each kind of attribute", () => {
    const read = fromItem({
      s: { S: "" },
      n: { N: "-1.5" },
      b: { B: "AAH+/w==" },
      ok: { BOOL: false },
      none: { NULL: true },
      list: { L: [{ N: "1" }, { M: {} }] },
      map: { M: { a: { S: "b" } } },
      ss: { SS: ["a", "b"] },
      ns: { NS: ["1", "9007199254740993"] },
      bs: { BS: ["AQ==", ""] },
    });
    expect(read).toEqual({
      s: "",
      n: -1.5,
      b: new Uint8Array([0, 1, 254, 255]),
      ok: false,
      none: null,
      list: [1, {}],
      map: { a: "b" },
      ss: new Set(["a", "b"]),
      ns: new Set([1, 9007199254740993n]),
      bs: new Set([new Uint8Array([1]), new Uint8Array(0)]),
    });
  });

  it("reads binary as a plain Uint8Array over bytes of its own", () => {
    const b = fromAttribute({ B: "aGVsbG8=" }) as Uint8Array;
    expect(Object.getPrototypeOf(b)).toBe(Uint8Array.prototype);
    expect(b.byteOffset).toBe(0);
    expect(b.buffer.byteLength).toBe(5);
    expect(Buffer.from(b).toString()).toBe("hello");
    const [member] = fromAttribute({ BS: ["aGk="] }) as Set<Uint8Array>;
    expect(Object.getPrototypeOf(member)).toBe(Uint8Array.prototype);
  });

  it("refuses an attribute of no known type", () => {
    expect(() => fromAttribute({ X: "1" } as unknown as AttributeValue)).toThrow(/"X"/);
    expect(() => fromAttribute({} as unknown as AttributeValue)).toThrow(TypeError);
    expect(() => fromItem({ a: { L: [{ $unknown: 1 } as unknown as AttributeValue] } })).toThrow(TypeError);
  });
});

describe("__proto__", () => {
  const wire = '{"__proto__":{"M":{"__proto__":{"S":"inner"},"polluted":{"BOOL":true}}},"pk":{"S":"a"}}';

  it("is an ordinary member when read", () => {
    const read = fromItem(JSON.parse(wire));
    expect(Object.getPrototypeOf(read)).toBe(Object.prototype);
    expect(Object.keys(read)).toEqual(["__proto__", "pk"]);
    const inner = Object.getOwnPropertyDescriptor(read, "__proto__")?.value;
    expect(Object.getPrototypeOf(inner)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(inner, "__proto__")?.value).toBe("inner");
    expect((read as { polluted?: unknown }).polluted).toBeUndefined();
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  });

  it("is an ordinary member when written, and round-trips", () => {
    const value = JSON.parse('{"__proto__":{"__proto__":"inner","polluted":true},"pk":"a"}');
    const written = toItem(value);
    expect(JSON.stringify(written)).toBe(wire);
    expect(Object.getPrototypeOf(written)).toBe(Object.prototype);
    expect(fromItem(overTheWire(written))).toEqual(value);
    expect(JSON.stringify(fromItem(overTheWire(written)))).toBe(JSON.stringify(value));
  });
});
