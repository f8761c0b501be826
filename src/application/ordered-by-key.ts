/**
 * Handles work concurrently, except that work sharing a key runs one at a time, in the order it arrived.
 *
 *   const order = new OrderedByKey();
 *   // for each message, in the order it was received:
 *   const place = order.arrive();                      // synchronously, on receipt
 *   ... decode (concurrently with the others) ...
 *   const r = await place.enter(keys, () => handle(), (outcome) => isRetry(outcome));
 *   r.ran ? r.value : heldBack;                         // or place.leave() when it is not handled at all
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
 * - Held back: when a task's outcome is a failure (`failed(value)`, e.g. handed back to the broker for another
 *   attempt), the places that had already arrived and share one of its keys do not run (`{ ran: false }`); the
 *   caller hands them back too, so they come again after the failed one, in their order. Places arriving after
 *   the failure run normally (the failed message's own redelivery among them).
 */
export type Entered<T> = Readonly<{ ran: true; value: T }> | Readonly<{ ran: false }>;

export interface Place {
  /** Run `task` once the earlier places sharing a key are done, unless held back (see the class comment). */
  enter<T>(keys: readonly string[], task: () => Promise<T>, failed: (value: T) => boolean): Promise<Entered<T>>;
  /** This place will not run anything: the places after it need not wait for it. */
  leave(): void;
}

export class OrderedByKey {
  private arrivals = 0;
  /** The last place (by arrival) that has entered its lanes or left; every earlier one has too. */
  private declaredThrough = 0;
  /** Resolves when every place that arrived so far has entered its lanes or left. */
  private declared: Promise<void> = Promise.resolve();
  /** Per key, the last task to finish (the tail of its lane), while there is one. */
  private readonly tails = new Map<string, Promise<void>>();
  /** Per key, the places up to this arrival number are held back (set by a failure; see the class comment). */
  private readonly holds = new Map<string, number>();

  /** Lanes with work in them or waiting, and keys with a hold (for tests and metrics). */
  get size(): Readonly<{ lanes: number; holds: number }> {
    return { lanes: this.tails.size, holds: this.holds.size };
  }

  arrive(): Place {
    const seq = ++this.arrivals;
    const before = this.declared;
    let resolveDeclared!: () => void;
    this.declared = new Promise<void>((resolve) => (resolveDeclared = resolve));
    const declare = () => {
      this.declaredThrough = seq;
      resolveDeclared();
    };
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
      enter: async <T>(keys: readonly string[], task: () => Promise<T>, failed: (value: T) => boolean): Promise<Entered<T>> => {
        use();
        await before;
        const unique = [...new Set(keys)];
        const waits: Promise<void>[] = [];
        let done!: () => void;
        const mine = new Promise<void>((resolve) => (done = resolve));
        for (const key of unique) {
          const tail = this.tails.get(key);
          if (tail) waits.push(tail);
          this.tails.set(key, mine);
        }
        declare();
        try {
          if (waits.length > 0) await Promise.all(waits);
          // Held back by a failure, after this place arrived, of an earlier place sharing a key.
          let hold = 0;
          for (const key of unique) {
            const through = this.holds.get(key);
            if (through !== undefined && seq <= through) hold = Math.max(hold, through);
          }
          if (hold > 0) {
            this.holdBack(unique, hold); // the places behind this one that arrived before the failure, too
            return { ran: false };
          }
          const value = await task();
          if (failed(value)) this.holdBack(unique, this.arrivals);
          return { ran: true, value };
        } catch (error) {
          this.holdBack(unique, this.arrivals);
          throw error;
        } finally {
          done();
          for (const key of unique) if (this.tails.get(key) === mine) this.tails.delete(key);
        }
      },
    };
  }

  private holdBack(keys: readonly string[], through: number): void {
    // A hold matters only to places that arrived by `through` and have not entered yet: forget the spent ones.
    for (const [key, at] of this.holds) if (at <= this.declaredThrough && !this.tails.has(key)) this.holds.delete(key);
    for (const key of keys) this.holds.set(key, Math.max(this.holds.get(key) ?? 0, through));
  }
}
