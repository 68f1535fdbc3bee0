// @vitest-environment node
/**
 * Upkeep a call finds due (an endpoint view's read once it is a second old) waits until the call's
 * model has answered or its response has gone, and the invocation does not return before it is done.
 * The store here is a counting stand-in for EndpointStateStore's read: what is tested is when the
 * view asks for a read, not DynamoDB (test/integration/circuit-breaker.test.ts reads the real table).
 */
import { Writable } from "node:stream";
import { type EndpointState, emptyEndpointState } from "@atrium/core/endpoint-state";
import { installLocalLambdaStreamingRuntime } from "@atrium/local/lambda-streaming-runtime";
import type { Context } from "aws-lambda";
import { beforeAll, describe, expect, it } from "vitest";
import { startUpkeep, upkeepDone, whenCallAllows } from "../src/lib/call-upkeep";
import { createEndpointView, VIEW_MICROS } from "../src/lib/endpoint-view";

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

/** A store whose reads are counted and answer with the state it holds at that moment. */
function countingStore(initial: EndpointState) {
  const store = { state: initial, reads: 0 };
  return {
    store,
    read: async (_endpointName: string) => {
      store.reads += 1;
      await tick();
      return structuredClone(store.state);
    },
  };
}

describe("call upkeep", () => {
  it("starts work queued under one key once, and only when upkeep starts", async () => {
    let runs = 0;
    const work = async () => {
      runs += 1;
    };
    whenCallAllows("k1", work);
    whenCallAllows("k1", work);
    await tick();
    expect(runs).toBe(0);
    startUpkeep();
    await upkeepDone();
    expect(runs).toBe(1);
    startUpkeep();
    expect(runs).toBe(1);
  });

  it("upkeepDone starts what is due, waits for it, and swallows its failure", async () => {
    const done: string[] = [];
    whenCallAllows("slow", async () => {
      await new Promise((resolve) => setTimeout(resolve, 30));
      done.push("slow");
    });
    whenCallAllows("failing", async () => {
      throw new Error("unreadable");
    });
    await upkeepDone();
    expect(done).toEqual(["slow"]);
  });
});

describe("an endpoint view whose reads wait for upkeep", () => {
  it("answers a stale view as it is, reads again only once upkeep starts, then answers the new state", async () => {
    const { store, read } = countingStore(emptyEndpointState());
    const view = createEndpointView({ read }, 60_000, whenCallAllows);
    const at = 1_000_000_000;
    expect(await view.read("ep-a", at)).toEqual(emptyEndpointState());
    expect(store.reads).toBe(1);

    store.state = { ...emptyEndpointState(), contendedUntil: at + 5 * VIEW_MICROS };
    // A second old: the call gets what the view holds, and no read goes out beside it.
    expect(await view.read("ep-a", at + VIEW_MICROS)).toEqual(emptyEndpointState());
    expect(await view.read("ep-a", at + VIEW_MICROS + 1)).toEqual(emptyEndpointState());
    await tick();
    expect(store.reads).toBe(1);

    await upkeepDone();
    expect(store.reads).toBe(2);
    expect((await view.read("ep-a", at + VIEW_MICROS + 2))?.contendedUntil).toBe(at + 5 * VIEW_MICROS);
  });

  it("reads at once without `startRead` (the default)", async () => {
    const { store, read } = countingStore(emptyEndpointState());
    const view = createEndpointView({ read }, 60_000);
    await view.read("ep-b", 0);
    await view.read("ep-b", VIEW_MICROS);
    await tick();
    await tick();
    expect(store.reads).toBe(2);
  });
});

describe("a streamed-proxy invocation", () => {
  beforeAll(() => installLocalLambdaStreamingRuntime());

  it("sends its response first and returns only once the upkeep its call found due is done", async () => {
    const { streamedProxyHandler } = await import("../src/lib/stream-response");
    const order: string[] = [];
    const handler = streamedProxyHandler(async () => {
      whenCallAllows("upkeep-of-this-call", async () => {
        await new Promise((resolve) => setTimeout(resolve, 30));
        order.push("upkeep done");
      });
      return { statusCode: 200, headers: {}, body: "ok" };
    }) as unknown as (event: unknown, stream: Writable, context: Context) => Promise<void>;
    const out = new Writable({
      write(_chunk, _encoding, done) {
        done();
      },
      final(done) {
        order.push("response sent");
        done();
      },
    });
    await handler({}, out, { awsRequestId: "r1" } as unknown as Context);
    order.push("invocation returned");
    expect(order).toEqual(["response sent", "upkeep done", "invocation returned"]);
  });
});
