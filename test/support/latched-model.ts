/**
 * A model container (SageMaker's container contract) that answers as the reference model does, but
 * holds every invocation until the test releases them: so a test knows exactly which calls are in
 * flight on the endpoint, with no timing involved.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { invokeReferenceModel } from "@atrium/local/reference-model";
import { readAll } from "./gated-model";

export interface LatchedModel {
  url: string;
  /** Invocations received so far (held or answered). */
  received(): number;
  /** Answers every held invocation, and those that arrive later, until `hold()`. */
  release(): void;
  /** Holds the invocations that arrive from now on. */
  hold(): void;
  close(): Promise<void>;
}

export async function startLatchedModel(endpointName: string): Promise<LatchedModel> {
  let received = 0;
  let open: Promise<void> = new Promise(() => {});
  let opened: () => void = () => {};
  const hold = () => {
    open = new Promise((resolve) => {
      opened = resolve;
    });
  };
  hold();
  const server = createServer(async (req, res) => {
    const body = await readAll(req);
    if (req.url === "/ping") return void res.end();
    received += 1;
    await open;
    const answer = invokeReferenceModel({
      endpointName,
      body,
      ...(req.headers["content-type"] ? { contentType: req.headers["content-type"] } : {}),
    });
    if ("events" in answer) throw new Error("the latched model answers buffered calls only");
    res.writeHead(answer.status, { "content-type": answer.contentType });
    res.end(answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received: () => received,
    release: () => opened(),
    hold,
    close: () =>
      new Promise<void>((resolve) => {
        opened();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
