/**
 * Upkeep a call finds due but need not wait for, such as reading an endpoint's state again once its
 * view is a second old (endpoint-view.ts). Started as soon as it is found, its request, its answer
 * and (locally) DynamoDB Local's work for it fall in the time before the call's model is called,
 * which is the time to first token. Queued here instead, it starts once a model has answered a
 * streamed call (the stream's head: the model is working on its tokens) or once a call's response
 * has been sent, whichever comes first; the invocation returns only after it is done, so nothing is
 * left in flight when Lambda freezes the instance. docs/adr/0012-fair-share.md, "No call waits on
 * the endpoint's state".
 */

/** Due work by key (one per key: a second call finding the same view stale adds nothing). */
const due = new Map<string, () => Promise<unknown>>();
/** Work started and not yet done. */
const running = new Set<Promise<unknown>>();

/** Queues `work` under `key` unless work under that key is already waiting. */
export function whenCallAllows(key: string, work: () => Promise<unknown>): void {
  if (!due.has(key)) due.set(key, work);
}

/** Starts every piece of due work; never throws (each piece handles its own failure). */
export function startUpkeep(): void {
  if (due.size === 0) return;
  const works = [...due.values()];
  due.clear();
  for (const work of works) {
    const started = work()
      .catch(() => undefined)
      .finally(() => running.delete(started));
    running.add(started);
  }
}

/** Starts what is due and resolves once all upkeep started so far is done. */
export async function upkeepDone(): Promise<void> {
  startUpkeep();
  while (running.size > 0) await Promise.all(running);
}
