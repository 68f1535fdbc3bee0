/**
 * A controller that aborts when any of `ends` does, or has: AbortSignal.any's job for signals that
 * live as long as the call, without its bookkeeping (on Node.js 20, seven times a controller's cost).
 */
export function stoppedBy(ends: (AbortSignal | undefined)[]): AbortController {
  const stop = new AbortController();
  for (const end of ends) {
    if (!end) continue;
    if (end.aborted) stop.abort(end.reason);
    else end.addEventListener("abort", () => stop.abort(end.reason), { once: true });
  }
  return stop;
}
