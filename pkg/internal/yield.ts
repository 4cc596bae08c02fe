/**
 * Let the event loop run (timers, I/O, other requests) before going on: a macrotask, so that one
 * long computation split at these points never holds the loop for all of its length. Web APIs only;
 * where the runtime has `setImmediate` (Node, Bun) it is used, since `setTimeout(0)` waits at least
 * a millisecond there.
 * @example
 * await yieldToEventLoop()
 */
export function yieldToEventLoop(): Promise<void> {
  const immediate = (globalThis as { setImmediate?: (callback: () => void) => unknown }).setImmediate;
  return new Promise((resolve) => {
    if (immediate !== undefined) immediate(resolve);
    else setTimeout(resolve, 0);
  });
}

/**
 * A point where a long computation may let the event loop run: it returns a promise (await it)
 * once the slice's time budget is spent, otherwise undefined (go on at once, no microtask).
 */
export type SlicePoint = () => Promise<void> | undefined;

/** A {@link SlicePoint} that never pauses (small inputs, synchronous callers). */
export const NEVER_PAUSE: SlicePoint = () => undefined;

/**
 * A {@link SlicePoint} that yields to the event loop once `budgetMs` of work has passed since the
 * last yield, so no step of the computation holds the loop much longer than the budget.
 * @example
 * const pause = timeSlicer(2)
 * for (const item of items) { const p = pause(); if (p) await p; work(item) }
 */
export function timeSlicer(budgetMs: number): SlicePoint {
  let sliceStart = performance.now();
  return () => {
    if (performance.now() - sliceStart < budgetMs) return undefined;
    return yieldToEventLoop().then(() => {
      sliceStart = performance.now();
    });
  };
}
