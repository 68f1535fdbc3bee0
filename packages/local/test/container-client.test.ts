/**
 * The SageMaker emulator's buffered call to a model container, against a real HTTP server: the
 * answer as sent, kept-alive sockets reused, and a timeout reported as the signal's TimeoutError.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { postInvocation } from "@atrium/local/container-client";
import { afterEach, describe, expect, it } from "vitest";

let server: Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** A container whose /invocations answers with `answer`; counts the connections it accepted. */
async function container(
  answer: (body: string, res: import("node:http").ServerResponse) => void,
): Promise<{ url: string; connections: () => number }> {
  let connections = 0;
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => answer(Buffer.concat(chunks).toString("utf8"), res));
  });
  server.on("connection", () => {
    connections += 1;
  });
  await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, connections: () => connections };
}

describe("postInvocation", () => {
  it("sends the body and headers and returns status, headers and body, reusing its socket", async () => {
    const target = await container((body, res) => {
      res.writeHead(201, { "content-type": "text/plain", "x-amzn-sagemaker-custom-attributes": "a=1" });
      res.end(`echo ${body}`);
    });
    for (const text of ["one", "two"]) {
      const answer = await postInvocation(
        target.url,
        { "content-type": "text/plain" },
        Buffer.from(text),
        AbortSignal.timeout(5_000),
      );
      expect(answer.status).toBe(201);
      expect(answer.headers["x-amzn-sagemaker-custom-attributes"]).toBe("a=1");
      expect(answer.body.toString()).toBe(`echo ${text}`);
    }
    expect(target.connections()).toBe(1);
  });

  it("rejects with the signal's TimeoutError when the container does not answer in time", async () => {
    const target = await container(() => {});
    const call = postInvocation(target.url, {}, Buffer.from("x"), AbortSignal.timeout(50));
    await expect(call).rejects.toMatchObject({ name: "TimeoutError" });
  });

  it("rejects with the connection's error when nothing listens", async () => {
    const target = await container(() => {});
    server?.close();
    server = undefined;
    await expect(
      postInvocation(target.url, {}, Buffer.from("x"), AbortSignal.timeout(5_000)),
    ).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });
});
