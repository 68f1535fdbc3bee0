/**
 * Server-sent events reassembled from bytes that arrive split anywhere (SageMaker's payload parts cut
 * lines and multi-byte characters alike): only whole events are returned, and the end of the stream
 * says whether an event was left unfinished.
 */

/** A dispatched event: its `data` (data lines joined by "\n"), or the `[DONE]` that ends OpenAI-style streams. */
export type SseEvent = { kind: "data"; data: string } | { kind: "done" };

const LINE_END = /\r\n|\r|\n/g;

export class SseReader {
  private readonly decoder = new TextDecoder("utf-8");
  /** Text after the last complete line. */
  private partial = "";
  /** A line ended by "\r" whose "\n" may come in the next bytes. */
  private afterCr = false;
  /** Lines of the event being read, as received, and its data lines (null before its first one). */
  private lines: string[] = [];
  private data: string[] | null = null;

  /** Reads more bytes; returns the events they complete, in order. */
  push(bytes: Uint8Array): SseEvent[] {
    let text = this.decoder.decode(bytes, { stream: true });
    if (text === "") return [];
    if (this.afterCr && text.startsWith("\n")) text = text.slice(1);
    text = this.partial + text;
    const events: SseEvent[] = [];
    let start = 0;
    for (const match of text.matchAll(LINE_END)) {
      const event = this.readLine(text.slice(start, match.index));
      if (event) events.push(event);
      start = match.index + match[0].length;
    }
    this.afterCr = start === text.length && text.endsWith("\r");
    this.partial = text.slice(start);
    return events;
  }

  /**
   * Ends the stream: null when it ended between events, else the text of the unfinished event
   * (lines with no blank line after them, or an unterminated line), which is not dispatched.
   */
  end(): string | null {
    const lines = this.lines.map((line) => `${line}\n`).join("");
    const unfinished = lines + this.partial + this.decoder.decode();
    this.partial = "";
    this.lines = [];
    this.data = null;
    return unfinished === "" ? null : unfinished;
  }

  /** One line of the stream: a blank one dispatches the event; comments and other fields are skipped. */
  private readLine(line: string): SseEvent | undefined {
    if (line === "") {
      const data = this.data;
      this.lines = [];
      this.data = null;
      if (data === null) return undefined;
      const joined = data.join("\n");
      return joined === "[DONE]" ? { kind: "done" } : { kind: "data", data: joined };
    }
    this.lines.push(line);
    const colon = line.indexOf(":");
    // A line without a colon is a field with an empty value.
    const field = colon < 0 ? line : line.slice(0, colon);
    if (field !== "data") return undefined;
    const value = colon < 0 ? "" : line.slice(colon + 1);
    this.data ??= [];
    this.data.push(value.startsWith(" ") ? value.slice(1) : value);
    return undefined;
  }
}
