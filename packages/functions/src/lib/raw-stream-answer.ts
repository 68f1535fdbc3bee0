/**
 * What a raw streaming invocation sends and charges: the model's bytes, unchanged, metered by the
 * body's protocol. An event stream is read event by event as it passes; any other reply (a model
 * that answered a stream request at once) is read whole at its end, as a buffered invocation's is.
 * A reply Atrium cannot read is charged its reservation, never less.
 */
import { errorBody } from "@atrium/core/errors";
import { ModelStreamReader } from "@atrium/core/protocols/stream-reader";
import { type BoundCall, reportedUsage } from "@atrium/core/token-bound";
import { logger } from "./observability";
import { type StreamAnswer, splitUsage } from "./streamed-call";

/** SageMaker's largest buffered reply: a non-streamed answer longer than this is charged its reservation. */
const MAX_READ_WHOLE_BYTES = 6 * 1024 * 1024;

const isEventStream = (contentType: string) => /^text\/event-stream\b/i.test(contentType);

export function rawStreamAnswer(call: BoundCall, contentType: string): StreamAnswer {
  const promptReserved = call.reserved - call.outputBound;
  const events = isEventStream(contentType);
  let reader = events && call.protocol ? new ModelStreamReader(call.protocol, promptReserved) : undefined;
  let whole: Buffer[] | undefined = events ? undefined : [];
  let wholeBytes = 0;
  let unread = false;
  const giveUp = (why: string) => {
    if (!unread) logger.warn("streamed reply not metered; its reservation is charged", { why });
    unread = true;
    reader = undefined;
    whole = undefined;
  };
  return {
    part(bytes) {
      try {
        reader?.push(bytes);
      } catch {
        giveUp("unreadable event");
      }
      if (whole) {
        wholeBytes += bytes.length;
        if (wholeBytes > MAX_READ_WHOLE_BYTES) giveUp("reply too long to read whole");
        else whole.push(Buffer.from(bytes));
      }
      return bytes;
    },
    end() {
      try {
        reader?.end();
      } catch {
        giveUp("unfinished event");
      }
      return "";
    },
    // An event stream's client reads an error event; any other stream can only be cut.
    failure: (err) => (events ? `data: ${JSON.stringify(errorBody(err))}\n\n` : undefined),
    usage() {
      if (reader) return splitUsage(reader.usage());
      if (!whole) return undefined;
      const tokens = reportedUsage(Buffer.concat(whole), contentType, call);
      return tokens === undefined ? undefined : { tokens };
    },
  };
}
