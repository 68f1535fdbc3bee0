/**
 * The SageMaker emulator's buffered call to a model container: POST {url}/invocations over kept-alive
 * sockets with node:http, which costs a fraction of `fetch` per call (the request-path benchmark).
 */
import { Agent, request } from "node:http";
import { withSlash } from "./sagemaker-stream";

export interface ContainerAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

// One pool for every container, as SageMaker's front end keeps its connections to an instance.
const agent = new Agent({ keepAlive: true });

/** Rejects with the signal's reason (e.g. a TimeoutError) when it aborts, as `fetch` does. */
export function postInvocation(
  url: string,
  headers: Record<string, string>,
  body: Buffer,
  signal: AbortSignal,
): Promise<ContainerAnswer> {
  return new Promise((resolve, reject) => {
    const fail = (err: unknown) => reject(signal.aborted ? signal.reason : err);
    const req = request(
      new URL("invocations", withSlash(url)),
      { method: "POST", headers: { ...headers, "content-length": body.length }, agent, signal },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on("error", fail);
      },
    );
    req.on("error", fail);
    req.end(body);
  });
}
