/**
 * A counting semaphore over the upstream connections (`upstreamMaxSockets`), with a bounded FIFO
 * wait. The proxy takes one slot per request before the kernel consumes the jti and holds it
 * through the upstream exchange, so the http.Agent never queues a request of its own: a request
 * that cannot get a connection in time is refused while its passport is still unused.
 */
export class UpstreamSlots {
  readonly #size: number;
  readonly #waitMs: number;
  #active = 0;
  readonly #waiting = new Set<Waiter>();

  /**
   * @param size slots (the agent's `maxSockets`)
   * @param waitMs longest wait for a slot (`upstreamQueueTimeoutMs`)
   * @throws RangeError when either is not a positive integer
   */
  constructor(size: number, waitMs: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError('size must be a positive integer');
    if (!Number.isInteger(waitMs) || waitMs < 1) throw new RangeError('waitMs must be a positive integer');
    this.#size = size;
    this.#waitMs = waitMs;
  }

  /** Slots taken right now. */
  get active(): number {
    return this.#active;
  }

  /** Requests waiting for a slot right now. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /**
   * A lease for one request: {@link SlotLease.take} waits (bounded) for a slot, which is given back
   * by {@link SlotLease.release}; a release while still waiting leaves the queue.
   */
  lease(): SlotLease {
    let state: 'idle' | 'waiting' | 'held' | 'refused' | 'released' = 'idle';
    let taking: Promise<boolean> | undefined;
    let waiter: Waiter | undefined;
    const take = (): Promise<boolean> => {
      taking ??= new Promise<boolean>((resolve) => {
        if (state === 'released') return resolve(false);
        if (this.#active < this.#size && this.#waiting.size === 0) {
          this.#active += 1;
          state = 'held';
          return resolve(true);
        }
        state = 'waiting';
        const w: Waiter = {
          grant: () => {
            clearTimeout(w.timer);
            state = 'held';
            resolve(true);
          },
          cancel: () => {
            clearTimeout(w.timer);
            this.#waiting.delete(w);
            state = 'refused';
            resolve(false);
          },
          timer: setTimeout(() => w.cancel(), this.#waitMs),
        };
        waiter = w;
        this.#waiting.add(w);
      });
      return taking;
    };
    return {
      take,
      get held() {
        return state === 'held';
      },
      release: () => {
        if (state === 'held') {
          state = 'released';
          this.#active -= 1;
          this.#next();
        } else if (state === 'waiting') {
          waiter?.cancel();
          state = 'released';
        } else state = 'released';
      },
    };
  }

  #next(): void {
    for (const w of this.#waiting) {
      if (this.#active >= this.#size) return;
      this.#waiting.delete(w);
      this.#active += 1;
      w.grant();
    }
  }
}

interface Waiter {
  grant(): void;
  cancel(): void;
  readonly timer: NodeJS.Timeout;
}

/** One request's claim on an upstream slot. */
export interface SlotLease {
  /** Wait (at most the pool's `waitMs`) for a slot; true once held. Idempotent. */
  take(): Promise<boolean>;
  /** True while the slot is held. */
  readonly held: boolean;
  /** Give the slot back, or leave the queue. Idempotent. */
  release(): void;
}
