/**
 * A model container (SageMaker's container contract: POST /invocations, GET /ping) that answers as
 * the reference model does, and can hold a stream after its first events until the test lets it go:
 * a latch, so a test can act while the model is known to be still producing.
 */
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { invokeReferenceModel } from "@atrium/local/reference-model";
import { streamReferenceModel } from "@atrium/local/reference-stream";

export interface Gate {
  /** Resolves when the held stream has sent its first events and waits. */
  reached: Promise<void>;
  /** Lets the held stream go on to its end. */
  release(): void;
}

export interface GatedModel {
  url: string;
  /** The next stream sends `events` server-sent events, then waits for `release()`. */
  holdAfter(events: number): Gate;
  close(): Promise<void>;
}

/** `endpointName`: the endpoint it serves, which the reference model names in its replies. */
export async function startGatedModel(endpointName: string): Promise<GatedModel> {
  let armed: { events: number; reached: () => void; released: Promise<void> } | undefined;
  const server = createServer(async (req, res) => {
    const body = await readAll(req);
    if (req.url === "/ping") return void res.end();
    const input = {
      endpointName,
      body,
      ...(req.headers["content-type"] ? { contentType: req.headers["content-type"] } : {}),
      ...(req.headers.accept ? { accept: req.headers.accept } : {}),
    };
    const answer = asksToStream(body) ? streamReferenceModel(input) : invokeReferenceModel(input);
    if (!("events" in answer)) {
      res.writeHead(answer.status, { "content-type": answer.contentType });
      return void res.end(answer.body);
    }
    const gate = armed;
    armed = undefined;
    res.writeHead(200, { "content-type": answer.contentType });
    for (const [i, event] of answer.events.entries()) {
      if (gate && i === gate.events) {
        gate.reached();
        await gate.released;
      }
      // The caller left while the stream was held (Atrium stopped reading it): nothing more to send.
      if (res.destroyed) return;
      res.write(event);
    }
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    holdAfter(events) {
      let reached = () => {};
      let release = () => {};
      const gate: Gate = {
        reached: new Promise<void>((resolve) => {
          reached = resolve;
        }),
        release: () => release(),
      };
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      armed = { events, reached, released };
      return gate;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A request's whole body. */
export async function readAll(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Whether the body asks to stream (`stream: true`), as a Messages API container reads it. */
function asksToStream(body: Buffer): boolean {
  try {
    return (JSON.parse(body.toString("utf8")) as { stream?: unknown }).stream === true;
  } catch {
    return false;
  }
}
