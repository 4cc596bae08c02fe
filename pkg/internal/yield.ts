/**
 * Let the event loop run (timers, I/O, other requests) before going on: a macrotask, so that one
 * long computation split at these points never holds the loop for all of its length. Web APIs only.
 * @example
 * await yieldToEventLoop()
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
