/**
 * Handles work concurrently, except that work sharing a key runs one at a time, in the order it arrived; and work
 * that failed and will come again (a message handed back to the broker) keeps its place until it has.
 *
 *   const order = new OrderedByKey();
 *   // for each message, in the order it was received:
 *   const place = order.arrive();                      // synchronously, on receipt
 *   ... decode (concurrently with the others) ...
 *   const outcome = await place.enter(keys, envelopeId, () => handle(), (outcome) => comesBack(outcome));
 *   // or place.leave() when it is not handled at all
 *
 * Why: the hub's uplink consumer handles up to `prefetch` messages at once. Two messages about one expert (its
 * registration, then a change; two changes) sent back to back would otherwise be applied in either order: a change
 * before the registration is refused, and of two changes the older may land last. With the expert as the key, a
 * system's messages about one expert are applied in the order they arrived; different experts still run at once.
 *
 * - Arrival order is the order of `arrive()` calls. A place enters its lanes only after every earlier place has
 *   entered or left (so a slow decode cannot be overtaken by a later message with the same key); each place must
 *   call exactly one of `enter` and `leave`, or the places after it wait for ever.
 * - A place waits for the earlier places sharing any of its keys (a batch of experts has one key per expert).
 * - A place whose task failed in a way that brings it back (`comesBack(value)`, or the task threw) keeps its
 *   lanes: the places behind it, and those arriving later, wait until it comes again (a place entering with the
 *   same `id`, which goes ahead of them) and no longer comes back, or until `redeliveryWaitMs` passed without it
 *   (it went to another consumer, or was dead-lettered unhandled).
 */
export interface Place {
  /** Run `task` once the earlier places sharing a key are done (see the class comment); its value, or its error. */
  enter<T>(keys: readonly string[], id: string, task: () => Promise<T>, comesBack: (value: T) => boolean): Promise<T>;
  /** This place will not run anything: the places after it need not wait for it. */
  leave(): void;
}

export type OrderedByKeyOptions = Readonly<{
  /** How long the work behind a failed place waits for it to come again (default 30 s). */
  redeliveryWaitMs?: number;
}>;

/** What `enter` rejects with once `close()` was called, instead of running a task that had not started. */
export class OrderClosedError extends Error {
  constructor() {
    super('closed: the work was not started');
    this.name = 'OrderClosedError';
  }
}

/** A failed place that others wait for: its id, its keys, and what lets them go. */
type Awaited = { id: string; keys: string[]; release: () => void; timer: ReturnType<typeof setTimeout> };

export class OrderedByKey {
  private readonly redeliveryWaitMs: number;
  private arrivals = 0;
  /** Resolves when every place that arrived so far has entered its lanes or left. */
  private declared: Promise<void> = Promise.resolve();
  /** Per key, the place that finishes last of those entered (the tail of its lane), while there is one. */
  private readonly tails = new Map<string, Promise<void>>();
  /** Per key, the failed place waited for, while it is. */
  private readonly awaited = new Map<string, Awaited>();
  private closed = false;

  constructor(options: OrderedByKeyOptions = {}) {
    this.redeliveryWaitMs = options.redeliveryWaitMs ?? 30_000;
  }

  /** Lanes with work in them or waiting, and keys waiting for a failed place to come again (tests, metrics). */
  get size(): Readonly<{ lanes: number; awaited: number }> {
    return { lanes: this.tails.size, awaited: this.awaited.size };
  }

  /**
   * Stop waiting: every failed place is given up on, and the tasks that have not started are not run (their
   * `enter` rejects with OrderClosedError). For a consumer that stops: it hands those messages back.
   */
  close(): void {
    this.closed = true;
    for (const awaited of new Set(this.awaited.values())) awaited.release();
  }

  arrive(): Place {
    ++this.arrivals;
    const before = this.declared;
    let declare!: () => void;
    this.declared = new Promise<void>((resolve) => (declare = resolve));
    let used = false;
    const use = () => {
      if (used) throw new Error('a place is entered or left once');
      used = true;
    };
    return {
      leave: () => {
        use();
        void before.then(declare);
      },
      enter: async <T>(keys: readonly string[], id: string, task: () => Promise<T>, comesBack: (value: T) => boolean): Promise<T> => {
        use();
        await before;
        const unique = [...new Set(keys)];
        let done!: () => void;
        const mine = new Promise<void>((resolve) => (done = resolve));
        // Coming again after a failure: it goes ahead of the places that wait for it on those keys.
        let again: Awaited | undefined;
        const waits: Promise<void>[] = [];
        const own: string[] = [];
        for (const key of unique) {
          const awaited = this.awaited.get(key);
          if (awaited?.id === id) {
            again = awaited;
            continue;
          }
          const tail = this.tails.get(key);
          if (tail) waits.push(tail);
          this.tails.set(key, mine);
          own.push(key);
        }
        declare();
        const finish = () => {
          done();
          for (const key of own) if (this.tails.get(key) === mine) this.tails.delete(key);
        };
        let value: T | undefined;
        let failure: { error: unknown } | undefined;
        try {
          if (waits.length > 0) await Promise.all(waits);
          if (this.closed) throw new OrderClosedError();
          value = await task();
        } catch (error) {
          failure = { error };
        }
        if (!this.closed && (failure !== undefined || comesBack(value as T))) this.keepPlace(id, own, finish, again);
        else {
          again?.release();
          finish();
        }
        if (failure !== undefined) throw failure.error;
        return value as T;
      },
    };
  }

  /** A failed place keeps its lanes until it comes again and succeeds, or the wait is over. */
  private keepPlace(id: string, own: readonly string[], finish: () => void, again: Awaited | undefined): void {
    const awaited: Awaited = again ?? { id, keys: [], release: () => undefined, timer: undefined as never };
    const releasePrevious = awaited.release;
    let released = false;
    awaited.release = () => {
      if (released) return;
      released = true;
      clearTimeout(awaited.timer);
      for (const key of awaited.keys) if (this.awaited.get(key) === awaited) this.awaited.delete(key);
      releasePrevious();
      finish();
    };
    for (const key of own) {
      awaited.keys.push(key);
      this.awaited.set(key, awaited);
    }
    clearTimeout(awaited.timer);
    awaited.timer = setTimeout(() => awaited.release(), this.redeliveryWaitMs);
    awaited.timer.unref?.();
  }
}
