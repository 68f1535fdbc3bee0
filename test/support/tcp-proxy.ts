/**
 * A TCP proxy a test puts between the handlers and DynamoDB to make DynamoDB fail the ways a network
 * does: `hang` accepts connections and never answers, `refuse` stops listening so connections are
 * refused, `forward` passes everything through.
 */
import { connect, createServer, type Server, type Socket } from "node:net";

export type ProxyMode = "forward" | "hang" | "refuse";

export interface TcpProxy {
  url: string;
  setMode(mode: ProxyMode): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetUrl: string): Promise<TcpProxy> {
  const target = new URL(targetUrl);
  let mode: ProxyMode = "forward";
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    // A reset from either side only ends that connection.
    socket.on("error", () => socket.destroy());
  };

  const server: Server = createServer((client) => {
    track(client);
    const upstream = connect(Number(target.port), target.hostname);
    track(upstream);
    client.on("data", (chunk) => {
      if (mode === "forward") upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (mode === "forward") client.write(chunk);
    });
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });

  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        const address = server.address();
        resolve(typeof address === "object" && address ? address.port : port);
      });
    });
  const stopListening = () => new Promise<void>((resolve) => server.close(() => resolve()));
  const port = await listen(0);

  return {
    url: `http://127.0.0.1:${port}`,
    async setMode(next) {
      if (next === mode) return;
      if (mode === "refuse") await listen(port);
      const previous = mode;
      mode = next;
      const closed = next === "refuse" ? stopListening() : undefined;
      // Hanging keeps open connections (they just go silent); leaving it drops them, mid-exchange as they are.
      if (next === "refuse" || previous === "hang") for (const socket of sockets) socket.destroy();
      await closed;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      if (mode !== "refuse") await stopListening();
    },
  };
}
