/**
 * Plain JS values to DynamoDB's AttributeValues and back, in the JSON the DynamoDB HTTP API sends and
 * receives (binary as base64 strings), for Atrium's own DynamoDB client: it replaces the AWS SDK's
 * document client, whose import and per-call CPU cost too much on the request path. The rules are
 * @aws-sdk/util-dynamodb's (`marshall` with removeUndefinedValues, `unmarshall`) for the values Atrium
 * stores; anything else (a Date, a Map, a function, a class instance) is a TypeError rather than a
 * guess, and a member named `__proto__` is an ordinary member both ways.
 */

export type AttributeValue =
  | { S: string }
  | { N: string }
  | { B: string }
  | { BOOL: boolean }
  | { NULL: true }
  | { L: AttributeValue[] }
  | { M: Record<string, AttributeValue> }
  | { SS: string[] }
  | { NS: string[] }
  | { BS: string[] };

export type Item = Record<string, unknown>;

/** Every AttributeValue's members, to read one whose type is not yet known without a cast per type. */
type AnyAttribute = {
  S?: string;
  N?: string;
  B?: string;
  BOOL?: boolean;
  NULL?: true;
  L?: AttributeValue[];
  M?: Record<string, AttributeValue>;
  SS?: string[];
  NS?: string[];
  BS?: string[];
};

/** `value` as an AttributeValue; undefined members and elements are left out, as DynamoDB has no undefined. */
export function toAttribute(value: unknown): AttributeValue {
  switch (typeof value) {
    case "string":
      return { S: value };
    case "number":
      return { N: numberString(value) };
    case "bigint":
      return { N: value.toString() };
    case "boolean":
      return { BOOL: value };
    case "object":
      if (value === null) return { NULL: true };
      if (Array.isArray(value)) return { L: toList(value) };
      if (value instanceof Uint8Array) return { B: toBase64(value) };
      if (value instanceof Set) return toSet(value);
      if (isPlainObject(value)) return { M: toMap(value) };
      break;
  }
  throw new TypeError(`DynamoDB cannot store a value of type ${typeName(value)}.`);
}

/** An item's members as AttributeValues, undefined members left out. */
export function toItem(value: Item): Record<string, AttributeValue> {
  if (typeof value !== "object" || value === null || !isPlainObject(value)) {
    throw new TypeError(`A DynamoDB item is a plain object, not a value of type ${typeName(value)}.`);
  }
  return toMap(value);
}

/**
 * The JS value of an AttributeValue: N is a number, or a bigint for an integer outside Number's safe
 * range (a RangeError when it is neither, as util-dynamodb refuses it); B and BS hold plain Uint8Arrays.
 */
export function fromAttribute(value: AttributeValue): unknown {
  const attribute = value as AnyAttribute;
  // As util-dynamodb reads it: the first member that is not undefined names the type.
  for (const type in attribute) {
    switch (type) {
      case "S":
        if (attribute.S !== undefined) return attribute.S;
        break;
      case "N":
        if (attribute.N !== undefined) return fromNumber(attribute.N);
        break;
      case "BOOL":
        if (attribute.BOOL !== undefined) return Boolean(attribute.BOOL);
        break;
      case "NULL":
        if (attribute.NULL !== undefined) return null;
        break;
      case "M":
        if (attribute.M !== undefined) return fromItem(attribute.M);
        break;
      case "L":
        if (attribute.L !== undefined) return fromList(attribute.L);
        break;
      case "B":
        if (attribute.B !== undefined) return fromBase64(attribute.B);
        break;
      case "SS":
        if (attribute.SS !== undefined) return new Set(attribute.SS);
        break;
      case "NS":
        if (attribute.NS !== undefined) return fromNumberSet(attribute.NS);
        break;
      case "BS":
        if (attribute.BS !== undefined) return fromBinarySet(attribute.BS);
        break;
      default:
        if ((attribute as Record<string, unknown>)[type] !== undefined) {
          throw new TypeError(`Unknown DynamoDB attribute type ${JSON.stringify(type)}.`);
        }
    }
  }
  throw new TypeError("A DynamoDB attribute value names no type.");
}

/** An item's members as JS values. */
export function fromItem(value: Record<string, AttributeValue>): Item {
  const item: Item = {};
  const keys = Object.keys(value);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    setMember(item, key, fromAttribute(value[key] as AttributeValue));
  }
  return item;
}

function toMap(value: object): Record<string, AttributeValue> {
  const map: Record<string, AttributeValue> = {};
  const members = value as Record<string, unknown>;
  const keys = Object.keys(members);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    const member = members[key];
    if (member !== undefined) setMember(map, key, toAttribute(member));
  }
  return map;
}

function toList(value: unknown[]): AttributeValue[] {
  const list: AttributeValue[] = [];
  for (let i = 0; i < value.length; i++) {
    const element = value[i];
    if (element !== undefined) list.push(toAttribute(element));
  }
  return list;
}

/** A set is SS, NS or BS by its members, which must all be of one kind; DynamoDB has no empty set. */
function toSet(value: Set<unknown>): AttributeValue {
  const members: string[] = [];
  let kind: "S" | "N" | "B" | undefined;
  for (const member of value) {
    if (member === undefined) continue;
    let memberKind: "S" | "N" | "B";
    let text: string;
    if (typeof member === "string") {
      memberKind = "S";
      text = member;
    } else if (typeof member === "number") {
      memberKind = "N";
      text = numberString(member);
    } else if (typeof member === "bigint") {
      memberKind = "N";
      text = member.toString();
    } else if (member instanceof Uint8Array) {
      memberKind = "B";
      text = toBase64(member);
    } else {
      throw new TypeError(`A DynamoDB set holds strings, numbers or binary, not a ${typeName(member)}.`);
    }
    if (kind === undefined) kind = memberKind;
    else if (kind !== memberKind) {
      throw new TypeError("A DynamoDB set's members must all be strings, all numbers or all binary.");
    }
    members.push(text);
  }
  if (kind === "S") return { SS: members };
  if (kind === "N") return { NS: members };
  if (kind === "B") return { BS: members };
  throw new TypeError("DynamoDB cannot store an empty set.");
}

/** As util-dynamodb writes a number: refused when not finite, or when outside the safe integers (use a bigint). */
function numberString(value: number): string {
  if (value > Number.MAX_SAFE_INTEGER || value < Number.MIN_SAFE_INTEGER || Number.isNaN(value)) {
    throw new RangeError(
      Number.isFinite(value)
        ? `The number ${value} is outside Number's safe integers and may have lost precision: pass a bigint.`
        : `DynamoDB cannot store the number ${value}.`,
    );
  }
  return String(value);
}

/**
 * util-dynamodb's convertNumber without wrapNumbers: Number(text), unless that is finite and outside
 * the safe integers, which is BigInt(text) when the text is an integer and a RangeError when not.
 */
function fromNumber(text: string): number | bigint {
  const value = Number(text);
  if (
    (value > Number.MAX_SAFE_INTEGER || value < Number.MIN_SAFE_INTEGER) &&
    value !== Number.POSITIVE_INFINITY &&
    value !== Number.NEGATIVE_INFINITY
  ) {
    try {
      return BigInt(text);
    } catch {
      throw new RangeError(`The DynamoDB number ${text} does not fit a Number without losing precision.`);
    }
  }
  return value;
}

function fromList(value: AttributeValue[]): unknown[] {
  const list: unknown[] = new Array(value.length);
  for (let i = 0; i < value.length; i++) list[i] = fromAttribute(value[i] as AttributeValue);
  return list;
}

function fromNumberSet(value: string[]): Set<number | bigint> {
  const set = new Set<number | bigint>();
  for (let i = 0; i < value.length; i++) set.add(fromNumber(value[i] as string));
  return set;
}

function fromBinarySet(value: string[]): Set<Uint8Array> {
  const set = new Set<Uint8Array>();
  for (let i = 0; i < value.length; i++) set.add(fromBase64(value[i] as string));
  return set;
}

function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

/** A plain Uint8Array of its own (not a Buffer, nor a view of Buffer's shared pool). */
function fromBase64(text: string): Uint8Array {
  const bytes = new Uint8Array(Buffer.byteLength(text, "base64"));
  const written = Buffer.from(bytes.buffer).write(text, "base64");
  return written === bytes.length ? bytes : bytes.slice(0, written);
}

/** `target[key] = value`, except that `__proto__` becomes a member rather than setting the prototype. */
function setMember<T>(target: Record<string, T>, key: string, value: T): void {
  if (key === "__proto__") {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    target[key] = value;
  }
}

/** An object literal's kind (or one made with Object.create(null)), not an instance of some class. */
function isPlainObject(value: object): boolean {
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (typeof value !== "object") return typeof value;
  const name = Object.getPrototypeOf(value)?.constructor?.name;
  return typeof name === "string" && name !== "" ? name : "object";
}
