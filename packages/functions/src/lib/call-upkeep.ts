/**
 * Upkeep a call finds due but need not wait for: reading an endpoint's state again once its view is
 * a second old (endpoint-view.ts), taking a tenant's next allotment before this one runs out
 * (allotments.ts). Started as soon as it is found, its request, its answer and (locally) DynamoDB
 * Local's work for it fall in the time before the call's model is called, which is the time to
 * first token. Queued here instead, it starts once a model has a call: a streamed call's head (the
 * model is working on its tokens) or a buffered call's request sent whole; or once a call's response
 * has been sent, whichever comes first. The invocation returns only after it is done, so nothing is
 * left in flight when Lambda freezes the instance. docs/adr/0012-fair-share.md, "No call waits on
 * the endpoint's state"; docs/adr/0004-exact-limits.md, "Renewal".
 */

/**
 * When a piece of upkeep starts, `key` naming it: the functions pass `whenCallAllows`; where no call
 * runs (tests of one module, scripts) it starts `atOnce`.
 */
export type StartUpkeep = (key: string, work: () => Promise<unknown>) => void;

/** Starts the work now, beside whatever found it due. */
export const atOnce: StartUpkeep = (_key, work) => void work();

/** Due work by key (one per key: a second call finding the same view stale adds nothing). */
const due = new Map<string, () => Promise<unknown>>();
/** Work started and not yet done. */
const running = new Set<Promise<unknown>>();

/** Queues `work` under `key` unless work under that key is already waiting. */
export const whenCallAllows: StartUpkeep = (key, work) => {
  if (!due.has(key)) due.set(key, work);
};

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
