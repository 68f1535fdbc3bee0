/**
 * A model's stream relayed to the client and metered exactly. The model is always read to its end,
 * whether or not anyone still listens: on Lambda a function cannot see its client leave, so what the
 * model produced is what is charged. A stream that breaks, or runs into the function's deadline,
 * ends with an error the client can read and is charged for the tokens produced; the rest of the
 * reservation is refunded in the same, single settle, whose writes wait until the last byte is sent.
 */
import type { Writable } from "node:stream";
import { AtriumError, upstream } from "@atrium/core/errors";
import type { Route } from "@atrium/core/route";
import type { TenantContext } from "./middleware";
import type { ModelStream } from "./model-stream";
import { settleStream } from "./settle-calls";
import { reportStream, type StreamOutcome } from "./stream-metrics";
import type { StreamedResult } from "./stream-response";

/** How a route turns its model's bytes into what its client reads, and what they used. */
export interface StreamAnswer {
  /** What the client is sent for the model's next bytes; an AtriumError when they break the protocol. */
  part(bytes: Uint8Array): string | Uint8Array;
  /** What the client is sent after the model's last byte. */
  end(): string | Uint8Array;
  /** What the client is sent when the stream fails after its head; undefined cuts the connection instead. */
  failure(err: AtriumError): string | undefined;
  /** What the model used so far, or undefined when it cannot be read (the reservation is charged). */
  usage(): StreamUsage | undefined;
}

/** Tokens to charge, and their split where the protocol gives one. */
export interface StreamUsage {
  tokens: number;
  split?: { promptTokens: number; completionTokens: number };
}

/** A protocol reader's usage, as a StreamAnswer reports it. */
export const splitUsage = (usage: { promptTokens: number; completionTokens: number }): StreamUsage => ({
  tokens: usage.promptTokens + usage.completionTokens,
  split: usage,
});

export function streamedCall(
  context: TenantContext,
  route: Route,
  model: ModelStream,
  answer: StreamAnswer,
  head: { headers: Record<string, string>; callMetric: string },
): StreamedResult {
  return {
    statusCode: 200,
    headers: head.headers,
    body: "",
    async stream(out) {
      const client = new ClientSink(out);
      const headAt = performance.now();
      let outcome: StreamOutcome = "completed";
      let closing: string | Uint8Array = "";
      try {
        client.write(answer.part(model.first));
        for await (const bytes of model.rest) client.write(answer.part(bytes));
        closing = answer.end();
      } catch (err) {
        const failure = asAtriumError(err, route.model);
        outcome = failure.code === "model_timeout" ? "timed_out" : "failed";
        model.abort();
        const text = answer.failure(failure);
        if (text === undefined) client.cut(failure);
        else closing = text;
      }
      const usage = answer.usage();
      const settle = settleStream(context, {
        tokens: usage?.tokens ?? context.ticket?.reserved ?? 0,
        split: usage?.split,
        outcome: outcome === "failed" || outcome === "timed_out" ? "error" : "ok",
      });
      client.write(closing);
      const lastPartAt = performance.now();
      await client.end();
      if (client.gone && outcome === "completed") outcome = "client_gone";
      await settle();
      reportStream({
        tenantId: context.tenant.id,
        model: route.model,
        outcome,
        modelTtftMs: model.firstPartMs,
        atriumTtftMs: Math.max(0, headAt - context.timing.startedAt - model.firstPartMs),
        usage: usage?.split,
        callMetric: head.callMetric,
        streamingMs: lastPartAt - headAt,
        latency: {
          totalMs: lastPartAt - context.timing.startedAt,
          modelMs: model.firstPartMs + (lastPartAt - headAt),
        },
      });
    },
  };
}

function asAtriumError(err: unknown, model: string): AtriumError {
  if (err instanceof AtriumError) return err;
  return upstream(502, "upstream_error", `The stream from the model '${model}' failed. Retry shortly.`);
}

/**
 * The client's side of the stream. Writes never throw and never wait: a client that has gone (the
 * response stream errored or closed) is no longer written to, and the model is still read to its end.
 * The output is bounded by the call's max_tokens, so nothing here grows without limit.
 */
class ClientSink {
  gone = false;

  constructor(private readonly out: Writable) {
    out.on("error", () => {
      this.gone = true;
    });
    out.on("close", () => {
      if (!out.writableFinished) this.gone = true;
    });
  }

  write(bytes: string | Uint8Array): void {
    if (this.gone || bytes.length === 0 || this.out.destroyed) return;
    this.out.write(bytes);
  }

  /** Ends the connection without its closing bytes: the client sees a truncated response. */
  cut(err: Error): void {
    if (!this.gone) this.out.destroy(err);
    this.gone = true;
  }

  end(): Promise<void> {
    if (this.out.destroyed || this.out.writableEnded) return Promise.resolve();
    return new Promise((resolve) => {
      this.out.once("error", () => resolve());
      this.out.end(() => resolve());
    });
  }
}
