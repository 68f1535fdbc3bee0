/**
 * LocalInvokeStore: a local stand-in for the Lambda runtime's invoke store in multi-concurrency mode
 * (`awslambda.InvokeStore` with AWS_LAMBDA_MAX_CONCURRENCY set). The local gateway runs every call it
 * receives at once in this one process, so each invocation gets its own store (AsyncLocalStorage):
 * Powertools then keeps its log keys, metrics and dimensions per invocation instead of sharing them, so
 * one tenant's call never publishes or logs under another's keys.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { Context } from "aws-lambda";

type InvocationContext = Record<string | symbol, unknown>;

/** The keys only the runtime sets, named as the Lambda runtime names them (global symbols). */
const PROTECTED_KEYS = {
  REQUEST_ID: Symbol.for("_AWS_LAMBDA_REQUEST_ID"),
  X_RAY_TRACE_ID: Symbol.for("_AWS_LAMBDA_X_RAY_TRACE_ID"),
  TENANT_ID: Symbol.for("_AWS_LAMBDA_TENANT_ID"),
  TRACEPARENT: Symbol.for("_AWS_LAMBDA_TRACEPARENT"),
  TRACESTATE: Symbol.for("_AWS_LAMBDA_TRACESTATE"),
  BAGGAGE: Symbol.for("_AWS_LAMBDA_BAGGAGE"),
} as const;
const protectedKeys = new Set<unknown>(Object.values(PROTECTED_KEYS));

/** Powertools reads only its presence; the gateway itself sets no bound on calls at once. */
const MAX_CONCURRENCY = "1000";

export class LocalInvokeStore {
  static readonly PROTECTED_KEYS = PROTECTED_KEYS;
  readonly #storage = new AsyncLocalStorage<InvocationContext>();

  getContext(): InvocationContext | undefined {
    return this.#storage.getStore();
  }
  hasContext(): boolean {
    return this.#storage.getStore() !== undefined;
  }
  get(key: string | symbol): unknown {
    return this.#storage.getStore()?.[key];
  }
  set(key: string | symbol, value: unknown): void {
    if (protectedKeys.has(key))
      throw new Error(`Cannot modify protected Lambda context field: ${String(key)}`);
    const store = this.#storage.getStore();
    if (!store) throw new Error("No invocation context");
    store[key] = value;
  }
  run<T>(context: InvocationContext, fn: () => T): T {
    return this.#storage.run(context, fn);
  }
  isProtectedKey(key: unknown): boolean {
    return protectedKeys.has(key);
  }
  getRequestId(): string {
    return (this.get(PROTECTED_KEYS.REQUEST_ID) as string | undefined) ?? "-";
  }
  getXRayTraceId(): string | undefined {
    return this.get(PROTECTED_KEYS.X_RAY_TRACE_ID) as string | undefined;
  }
  getTenantId(): string | undefined {
    return this.get(PROTECTED_KEYS.TENANT_ID) as string | undefined;
  }
  getTraceparent(): string | undefined {
    return this.get(PROTECTED_KEYS.TRACEPARENT) as string | undefined;
  }
  getTracestate(): string | undefined {
    return this.get(PROTECTED_KEYS.TRACESTATE) as string | undefined;
  }
  getBaggage(): string | undefined {
    return this.get(PROTECTED_KEYS.BAGGAGE) as string | undefined;
  }
}

let installed: LocalInvokeStore | undefined;

/**
 * Declares this process multi-concurrent and gives it the store, replacing a single-invocation one an
 * AWS SDK client may have put on `awslambda` (it cannot tell invocations apart).
 */
export function installLocalInvokeStore(): void {
  const global = globalThis as { awslambda?: Record<string, unknown> };
  global.awslambda ??= {};
  if (installed && global.awslambda.InvokeStore === installed) return;
  installed = new LocalInvokeStore();
  global.awslambda.InvokeStore = installed;
  process.env.AWS_LAMBDA_MAX_CONCURRENCY ??= MAX_CONCURRENCY;
}

/** Runs one invocation of a function in its own store, as the runtime does; outside the gateway, directly. */
export function inInvocation<T>(context: Context, invoke: () => T): T {
  if (!installed) return invoke();
  return installed.run({ [PROTECTED_KEYS.REQUEST_ID]: context.awsRequestId }, invoke);
}
