import { encodeHeaders, encodeMessage } from "@atrium/core/event-stream";

/** The events of SageMaker's InvokeEndpointWithResponseStream, framed as AWS event-stream messages. */

/** Every PayloadPart's headers, encoded once. */
const PAYLOAD_PART_HEADERS = encodeHeaders({
  ":event-type": "PayloadPart",
  ":content-type": "application/octet-stream",
  ":message-type": "event",
});

/** A `PayloadPart` event: its `Bytes` member is the event payload, raw (not JSON, not base64). */
export function payloadPart(bytes: Buffer): Buffer {
  return encodeMessage(PAYLOAD_PART_HEADERS, bytes);
}

/** A modeled exception event (ModelStreamError, InternalStreamFailure): its members as a JSON payload. */
export function exceptionEvent(exceptionType: string, members: Record<string, string>): Buffer {
  return encodeMessage(
    encodeHeaders({
      ":exception-type": exceptionType,
      ":content-type": "application/json",
      ":message-type": "exception",
    }),
    Buffer.from(JSON.stringify(members)),
  );
}
