/**
 * AWS event-stream framing (application/vnd.amazon.eventstream), the binary wire format of SageMaker's
 * InvokeEndpointWithResponseStream: the functions decode it, the local SageMaker emulator encodes it.
 * One message is:
 *   total length (u32) | headers length (u32) | prelude CRC32 | headers | payload | message CRC32
 * and each header is: name length (u8) | name | value type (u8) | value (type 7, a string: u16 length | UTF-8).
 */
import { crc32 } from "node:zlib";

const PRELUDE_BYTES = 8;
const CRC_BYTES = 4;
const MIN_MESSAGE_BYTES = PRELUDE_BYTES + CRC_BYTES + CRC_BYTES;
/** The largest message the format allows (16 MiB), and the most header bytes (128 KiB). */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
const MAX_HEADER_BYTES = 128 * 1024;

/** Header value types; SageMaker sends strings, the others are skipped by size. */
const STRING_HEADER = 7;
/** Bytes of each fixed-size value type: bool true, bool false, byte, short, integer, long, timestamp, uuid. */
const FIXED_SIZES: Record<number, number> = { 0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16 };
/** Variable-size types: a u16 length, then the value (6: bytes, 7: string). */
const SIZED_TYPES = new Set([6, STRING_HEADER]);

export interface EventMessage {
  /** The string headers (`:message-type`, `:event-type`, `:exception-type`, ...). */
  headers: Record<string, string>;
  payload: Uint8Array;
}

/** The bytes are not a well-formed event stream (a bad length or checksum, or a stream cut mid-message). */
export class EventStreamError extends Error {
  override name = "EventStreamError";
}

/** A message's headers in their wire form, for encodeMessage: a stream's repeated headers are encoded once. */
export function encodeHeaders(headers: Record<string, string>): Buffer {
  return Buffer.concat(Object.entries(headers).map(([name, value]) => encodeHeader(name, value)));
}

/** One message: `encodedHeaders` as encodeHeaders wrote them, then the payload. */
export function encodeMessage(encodedHeaders: Buffer, payload: Uint8Array): Buffer {
  const total = PRELUDE_BYTES + CRC_BYTES + encodedHeaders.length + payload.length + CRC_BYTES;
  // Every byte is written below.
  const message = Buffer.allocUnsafe(total);
  message.writeUInt32BE(total, 0);
  message.writeUInt32BE(encodedHeaders.length, 4);
  message.writeUInt32BE(crc32(message.subarray(0, PRELUDE_BYTES)), PRELUDE_BYTES);
  encodedHeaders.copy(message, PRELUDE_BYTES + CRC_BYTES);
  message.set(payload, PRELUDE_BYTES + CRC_BYTES + encodedHeaders.length);
  message.writeUInt32BE(crc32(message.subarray(0, total - CRC_BYTES)), total - CRC_BYTES);
  return message;
}

/**
 * The messages of a byte stream cut anywhere (as TCP delivers it), each once it is whole, read chunk
 * by chunk as the reader gets them: no async step per message between the socket and the reader.
 */
export class MessageDecoder {
  #buffered = Buffer.alloc(0);

  /** The messages `chunk` completes, in order; throws EventStreamError on a corrupt one. */
  push(chunk: Uint8Array): EventMessage[] {
    let buffered = this.#buffered.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#buffered, chunk]);
    const messages: EventMessage[] = [];
    while (buffered.length >= PRELUDE_BYTES + CRC_BYTES) {
      const total = messageLength(buffered);
      if (buffered.length < total) break;
      messages.push(decodeMessage(buffered.subarray(0, total)));
      buffered = buffered.subarray(total);
    }
    this.#buffered = buffered;
    return messages;
  }

  /** The bytes have ended: throws EventStreamError when they ended inside a message. */
  end(): void {
    if (this.#buffered.length > 0) throw new EventStreamError("The event stream ended inside a message.");
  }
}

/** The whole message's length from its prelude, once the prelude's own checksum holds. */
function messageLength(bytes: Buffer): number {
  const total = bytes.readUInt32BE(0);
  const headersLength = bytes.readUInt32BE(4);
  if (bytes.readUInt32BE(PRELUDE_BYTES) !== crc32(bytes.subarray(0, PRELUDE_BYTES))) {
    throw new EventStreamError("An event-stream message's prelude checksum does not match.");
  }
  if (
    total < MIN_MESSAGE_BYTES ||
    total > MAX_MESSAGE_BYTES ||
    headersLength > MAX_HEADER_BYTES ||
    headersLength > total - MIN_MESSAGE_BYTES
  ) {
    throw new EventStreamError(
      `An event-stream message has impossible lengths (${total}, ${headersLength}).`,
    );
  }
  return total;
}

function decodeMessage(message: Buffer): EventMessage {
  const total = message.length;
  if (message.readUInt32BE(total - CRC_BYTES) !== crc32(message.subarray(0, total - CRC_BYTES))) {
    throw new EventStreamError("An event-stream message's checksum does not match.");
  }
  const headersStart = PRELUDE_BYTES + CRC_BYTES;
  const headersEnd = headersStart + message.readUInt32BE(4);
  return {
    headers: decodeHeaders(message.subarray(headersStart, headersEnd)),
    payload: message.subarray(headersEnd, total - CRC_BYTES),
  };
}

function decodeHeaders(bytes: Buffer): Record<string, string> {
  const headers: Record<string, string> = {};
  let at = 0;
  while (at < bytes.length) {
    const nameEnd = at + 1 + (bytes[at] ?? 0);
    // The name, then its value's type byte.
    if (nameEnd + 1 > bytes.length) throw headerRunsPast();
    const name = bytes.toString("utf8", at + 1, nameEnd);
    const type = bytes[nameEnd] ?? -1;
    at = nameEnd + 1;
    if (SIZED_TYPES.has(type)) {
      if (at + 2 > bytes.length) throw headerRunsPast();
      const end = at + 2 + bytes.readUInt16BE(at);
      if (end > bytes.length) throw headerRunsPast();
      if (type === STRING_HEADER) setHeader(headers, name, bytes.toString("utf8", at + 2, end));
      at = end;
    } else {
      const size = FIXED_SIZES[type];
      if (size === undefined)
        throw new EventStreamError(`An event-stream header has an unknown type ${type}.`);
      if (at + size > bytes.length) throw headerRunsPast();
      at += size;
    }
  }
  return headers;
}

/** Defined, not assigned: a header named `__proto__` is then a header, not the object's prototype. */
function setHeader(headers: Record<string, string>, name: string, value: string): void {
  if (name === "__proto__") {
    Object.defineProperty(headers, name, { value, enumerable: true, writable: true, configurable: true });
  } else headers[name] = value;
}

const headerRunsPast = () => new EventStreamError("An event-stream header runs past its message.");

function encodeHeader(name: string, value: string): Buffer {
  const nameBytes = Buffer.from(name);
  const valueBytes = Buffer.from(value);
  const header = Buffer.alloc(1 + nameBytes.length + 1 + 2 + valueBytes.length);
  header.writeUInt8(nameBytes.length, 0);
  nameBytes.copy(header, 1);
  header.writeUInt8(STRING_HEADER, 1 + nameBytes.length);
  header.writeUInt16BE(valueBytes.length, 2 + nameBytes.length);
  valueBytes.copy(header, 4 + nameBytes.length);
  return header;
}
