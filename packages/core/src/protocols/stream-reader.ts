/**
 * A model's streamed reply, read as it arrives: whole server-sent events out of bytes split anywhere,
 * each read by the call's protocol, and what the call has used so far. The usage is the model's own
 * final report (OpenAI/vLLM `usage`, TGI `details`), else the token events counted; never a guess
 * from characters.
 */
import type { ModelProtocol, ModelUsage, StreamDelta } from "./protocol";
import { unreadableReply } from "./protocol";
import { SseReader } from "./sse";

export class ModelStreamReader {
  private readonly sse = new SseReader();
  private reported: ModelUsage | undefined;
  /** Generated tokens counted from the events, for a model that never reports usage. */
  private counted = 0;
  /** The finish reason the model gave, when it gave one. */
  finishReason: string | null = null;

  /** `promptReserved`: the prompt's part of the reservation, charged where the model does not count the prompt. */
  constructor(
    private readonly protocol: ModelProtocol,
    private readonly promptReserved: number,
  ) {}

  /** Reads more bytes; returns the events they complete, read. An event the protocol cannot read is a 502. */
  push(bytes: Uint8Array): StreamDelta[] {
    const deltas: StreamDelta[] = [];
    for (const event of this.sse.push(bytes)) {
      if (event.kind === "done") continue;
      const delta = this.protocol.streamEvent(event.data);
      this.counted += delta.tokens;
      if (delta.usage) this.reported = delta.usage;
      if (delta.finishReason !== null) this.finishReason = delta.finishReason;
      deltas.push(delta);
    }
    return deltas;
  }

  /** Ends the stream: an event left unfinished means the model's stream broke its protocol (a 502). */
  end(): void {
    if (this.sse.end() !== null) throw unreadableReply();
  }

  /** What the call used: the model's report where it gave one, else the prompt's reservation and the counted tokens. */
  usage(): { promptTokens: number; completionTokens: number } {
    const completionTokens = this.reported?.completionTokens ?? this.counted;
    return { promptTokens: this.reported?.promptTokens ?? this.promptReserved, completionTokens };
  }

  /** Tokens to charge for the call so far. */
  charge(): number {
    const { promptTokens, completionTokens } = this.usage();
    return promptTokens + completionTokens;
  }
}
