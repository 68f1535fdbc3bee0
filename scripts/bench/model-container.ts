/**
 * A model container for the request-path benchmark, run in its own process (as a model runs on its
 * own instance): SageMaker's container contract (GET /ping, POST /invocations) answered by the
 * reference model. Prints its URL on stdout once it listens.
 * Usage: node --import tsx scripts/bench/model-container.ts <endpoint name>
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { invokeReferenceModel } from "@atrium/local/reference-model";

const endpointName = process.argv[2] ?? "bench-container";

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    if (req.url === "/ping") return void res.end();
    const answer = invokeReferenceModel({
      endpointName,
      body: Buffer.concat(chunks),
      ...(req.headers["content-type"] ? { contentType: req.headers["content-type"] } : {}),
      ...(req.headers.accept ? { accept: req.headers.accept } : {}),
    });
    res.writeHead(answer.status, { "content-type": answer.contentType });
    res.end(answer.body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
