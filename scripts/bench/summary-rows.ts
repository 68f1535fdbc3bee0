/**
 * The summary table's rows of each benchmark, read from the JSON it wrote (.atrium/bench/<part>.json).
 * A target's verdict is the benchmark's own figure against issue 12's (or the part's own) target.
 */
import { kib } from "../../stacks/bundle-limits";
import { fixed } from "./output";

export interface Row {
  figure: string;
  value: string;
  target?: string;
  met?: boolean;
}

type Json = Record<string, unknown>;
// The JSON's shapes are the benchmarks' own (see each script's writeBenchJson call).
const at = (json: unknown, ...keys: (string | number)[]): unknown =>
  keys.reduce<unknown>((v, k) => (v as Json | undefined)?.[k as string], json);
const num = (json: unknown, ...keys: (string | number)[]): number => {
  const v = at(json, ...keys);
  return typeof v === "number" ? v : Number.NaN;
};
const ms = (value: number) => `${fixed(value)} ms`;

export const summaries: Record<string, (json: unknown) => Row[]> = {
  limits(json) {
    const phases = (at(json, "phases") as Json[] | undefined) ?? [];
    const warm = phases.at(-1);
    return [
      {
        figure: "over-admission, every phase",
        value: String(num(json, "overAdmitted")),
        target: "0",
        met: num(json, "overAdmitted") === 0,
      },
      {
        figure: "admission p50 / p99, warm containers",
        value: `${ms(num(warm, "admitP50Ms"))} / ${ms(num(warm, "admitP99Ms"))}`,
      },
      {
        figure: "DynamoDB calls per admitted / refused call (admit + settle)",
        value: `${fixed(num(warm, "dynamodbPerAdmitted"), 3)} / ${fixed(num(warm, "dynamodbPerRefused"), 3)}`,
      },
    ];
  },
  "request-path"(json) {
    const path = (name: string): Row => ({
      figure: `${name}: p50 / p99 at 1 connection; calls/s at 16`,
      value:
        `${ms(num(json, "figures", name, "sequential", "p50Ms"))} / ${ms(num(json, "figures", name, "sequential", "p99Ms"))}; ` +
        `${fixed(num(json, "figures", name, "at16", "callsPerSecond"), 0)}/s`,
    });
    const limiterWrites = num(json, "dynamodb", "perAdmittedCall", "byTable", "limits", "writes");
    const perCall = (kind: string) =>
      `${fixed(num(json, "dynamodb", kind, "reads"), 3)} reads, ${fixed(num(json, "dynamodb", kind, "writes"), 3)} writes`;
    return [
      path("container"),
      path("emulator"),
      path("atrium"),
      {
        figure: "Atrium's added latency (p50 atrium - p50 emulator)",
        value: ms(num(json, "addedP50Ms")),
        target: "<= 2 ms",
        met: at(json, "targets", "addedP50Ms", "met") === true,
      },
      {
        figure: "Atrium calls/s at 16 connections, limits on",
        value: fixed(num(json, "figures", "atrium", "at16", "callsPerSecond"), 0),
        target: ">= 600",
        met: at(json, "targets", "callsPerSecondAt16", "met") === true,
      },
      { figure: "DynamoDB requests per admitted call", value: perCall("perAdmittedCall") },
      {
        // Issue 12's leased capacity: a busy tenant's limiter writes (the ledger's are the row above's rest).
        figure: "limiter writes per admitted call",
        value: fixed(limiterWrites, 3),
        target: "<= 0.1",
        met: limiterWrites <= 0.1,
      },
      { figure: "DynamoDB requests per refused call", value: perCall("perRefusedCall") },
    ];
  },
  stream(json) {
    const figures = (at(json, "figures") as Json[] | undefined) ?? [];
    return figures.map((f) => {
      const label = String(at(f, "concurrency"));
      const added = num(f, "atriumAddsToTtftP50Ms");
      return {
        figure: `TTFT p50 direct / Atrium, ${streamsAtOnce(label)}`,
        value: `${ms(num(f, "directTtftP50Ms"))} / ${ms(num(f, "atriumTtftP50Ms"))} (Atrium adds ${ms(added)})`,
        // Issue 9's target is for a tenant streaming often; a quiet one waits for its admission write.
        ...(label.includes("quiet") ? {} : { target: "<= 2 ms", met: added <= 2 }),
      };
    });
  },
  fairness(json) {
    const target = (name: string, figure: string, target: string, digits = 3): Row => ({
      figure,
      value: fixed(num(json, "targets", name, "value"), digits),
      target,
      met: at(json, "targets", name, "met") === true,
    });
    return [
      target("quietSuccessAtLeast99", "quiet tenant's success rate with fair share", ">= 0.99"),
      target("quietP99Within1_5xAlone", "quiet tenant's p99 with fair share / alone", "<= 1.5", 2),
      target("atMostOneExtraWritePerCall", "endpoint-table writes per call while contended", "<= 1"),
    ];
  },
  reports(json) {
    return [
      {
        figure: `report of ${num(json, "settings", "TENANTS")} tenants x ${num(json, "settings", "DAYS")} days, loaded and rendered`,
        value: ms(num(json, "totalMs")),
      },
    ];
  },
  bundles(json) {
    const source = at(json, "reused") === true ? "reused" : "synthesised";
    const atMost = (
      figure: string,
      measured: string,
      limitName: string,
      showLimit: (limit: number) => string,
      showValue: (value: number) => string = showLimit,
    ): Row => {
      const value = num(json, "summary", measured);
      const limit = num(json, "limits", limitName);
      return { figure, value: showValue(value), target: `<= ${showLimit(limit)}`, met: value <= limit };
    };
    return [
      // The targets read the limits the bundles were measured against, not copies of them.
      atMost(
        `largest bundle (of ${num(json, "summary", "bundles")}, ${source})`,
        "largestBytes",
        "MAX_BUNDLE_BYTES",
        kib,
      ),
      atMost("authorizer bundle", "authorizerBytes", "MAX_AUTHORIZER_BYTES", kib),
      atMost("slowest import, CPU p50", "slowestImportCpuMs", "MAX_IMPORT_MS", (v) => `${v} ms`, ms),
      {
        figure: "bundles above a limit",
        value: String(num(json, "summary", "over")),
        target: "0",
        met: num(json, "summary", "over") === 0,
      },
    ];
  },
};

/** bench-stream's row label ("16", "1, quiet") in words. */
function streamsAtOnce(label: string): string {
  const [count, kind] = label.split(", ");
  return `${count} stream${count === "1" ? "" : "s"} at once${kind ? `, ${kind} tenant` : ""}`;
}
