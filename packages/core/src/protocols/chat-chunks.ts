/**
 * The OpenAI chat stream Atrium answers a tenant: `chat.completion.chunk` server-sent events in
 * OpenAI's order (the role in the first delta, content deltas, `finish_reason` in the last), the usage
 * chunk with `choices: []` when the client asked for it (and `usage: null` on every chunk before it),
 * then `data: [DONE]`. Whatever the container streamed, the tenant gets this one format.
 */
import type { AtriumError } from "../errors";
import { errorBody } from "../errors";

export interface ChunkIdentity {
  id: string;
  model: string;
  created: number;
}

const event = (data: unknown) => `data: ${JSON.stringify(data)}\n\n`;

export class ChatChunks {
  private started = false;
  /** Every chunk's text up to its delta, and after its finish reason: made once, not per token. */
  private readonly opening: string;
  private readonly closing: string;

  constructor(
    private readonly identity: ChunkIdentity,
    private readonly includeUsage: boolean,
  ) {
    // The JSON of the object `head()` and `chunk()` describe, in the same key order.
    const head = JSON.stringify(this.head());
    this.opening = `data: ${head.slice(0, -1)},"choices":[{"index":0,"delta":`;
    this.closing = `}]${includeUsage ? ',"usage":null' : ""}}\n\n`;
  }

  /** The events for new output text: the role chunk first, once, then the text (none for empty text). */
  content(text: string): string {
    let out = "";
    if (!this.started) {
      this.started = true;
      out += this.chunk({ role: "assistant", content: "" }, null);
    }
    if (text !== "") out += this.chunk({ content: text }, null);
    return out;
  }

  /** The end of the output: the finish chunk, the usage chunk when asked for, then [DONE]. */
  finish(finishReason: string, usage: { promptTokens: number; completionTokens: number }): string {
    let out = this.content("") + this.chunk({}, finishReason);
    if (this.includeUsage) {
      const { promptTokens, completionTokens } = usage;
      out += event({
        ...this.head(),
        choices: [],
        usage: {
          prompt_tokens: promptTokens,
          completion_tokens: completionTokens,
          total_tokens: promptTokens + completionTokens,
        },
      });
    }
    return `${out}data: [DONE]\n\n`;
  }

  /** A failure after the first byte: OpenAI's error object as an event; the stream ends after it. */
  error(err: AtriumError): string {
    return event(errorBody(err));
  }

  private head() {
    const { id, model, created } = this.identity;
    return { id, object: "chat.completion.chunk", created, model };
  }

  /** `{...head, choices: [{index: 0, delta, logprobs: null, finish_reason}], usage?: null}` as an event. */
  private chunk(delta: Record<string, string>, finishReason: string | null): string {
    const finish = JSON.stringify(finishReason);
    return `${this.opening}${JSON.stringify(delta)},"logprobs":null,"finish_reason":${finish}${this.closing}`;
  }
}
