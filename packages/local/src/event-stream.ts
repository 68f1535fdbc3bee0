import { crc32 } from "node:zlib";

/**
 * AWS event-stream framing (application/vnd.amazon.eventstream), the binary wire format of
 * SageMaker's InvokeEndpointWithResponseStream. One message is:
 *   total length (u32) | headers length (u32) | prelude CRC32 | headers | payload | message CRC32
 * and each header is: name length (u8) | name | value type (u8, 7 = string) | value length (u16) | value.
 */

const PRELUDE_BYTES = 8;
const CRC_BYTES = 4;
const STRING_HEADER = 7;

export function encodeMessage(headers: Record<string, string>, payload: Buffer): Buffer {
  const encodedHeaders = Buffer.concat(
    Object.entries(headers).map(([name, value]) => encodeHeader(name, value)),
  );
  const total = PRELUDE_BYTES + CRC_BYTES + encodedHeaders.length + payload.length + CRC_BYTES;
  const message = Buffer.alloc(total);
  message.writeUInt32BE(total, 0);
  message.writeUInt32BE(encodedHeaders.length, 4);
  message.writeUInt32BE(crc32(message.subarray(0, PRELUDE_BYTES)), PRELUDE_BYTES);
  encodedHeaders.copy(message, PRELUDE_BYTES + CRC_BYTES);
  payload.copy(message, PRELUDE_BYTES + CRC_BYTES + encodedHeaders.length);
  message.writeUInt32BE(crc32(message.subarray(0, total - CRC_BYTES)), total - CRC_BYTES);
  return message;
}

/** A `PayloadPart` event: its `Bytes` member is the event payload, raw (not JSON, not base64). */
export function payloadPart(bytes: Buffer): Buffer {
  return encodeMessage(
    { ":event-type": "PayloadPart", ":content-type": "application/octet-stream", ":message-type": "event" },
    bytes,
  );
}

/** A modeled exception event (ModelStreamError, InternalStreamFailure): its members as a JSON payload. */
export function exceptionEvent(exceptionType: string, members: Record<string, string>): Buffer {
  return encodeMessage(
    { ":exception-type": exceptionType, ":content-type": "application/json", ":message-type": "exception" },
    Buffer.from(JSON.stringify(members)),
  );
}

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
