// Which downlink envelope ids were processed already, so a redelivered or resent message reaches a handler once.
//
// The hub sends downlink messages at least once with deterministic envelope ids, and the broker redelivers any
// message whose acknowledgement was lost. The SDK's default store is a bounded in-memory window: it catches the
// repeats that arrive while the process runs (the common case), but it forgets on restart and past `capacity`.
// Durable dedupe is the receiving system's job: implement SeenStore on your own database, ideally marking the id
// in the same transaction as the handler's effect (then `add` after the handler is a cheap no-op), or make the
// handlers idempotent (keep the highest `revision` per expert, as the directory messages invite).

export interface SeenStore {
  /** Whether this envelope id was processed already. */
  has(id: string): boolean | Promise<boolean>;
  /** Remember the id; called after the handler resolved and before the message is acknowledged. */
  add(id: string): void | Promise<void>;
}

/** The last `capacity` ids, in memory (default 10,000); the oldest are forgotten first. */
export class BoundedSeenStore implements SeenStore {
  private readonly ids = new Set<string>();

  constructor(readonly capacity = 10_000) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('BoundedSeenStore: capacity must be a positive integer');
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  add(id: string): void {
    if (this.ids.has(id)) return;
    this.ids.add(id);
    if (this.ids.size > this.capacity) {
      // A Set iterates in insertion order: the first one is the oldest.
      const oldest = this.ids.values().next().value as string;
      this.ids.delete(oldest);
    }
  }

  get size(): number {
    return this.ids.size;
  }
}

/**
 * Runs a piece of work at most once per id, against a SeenStore: a copy that arrives while the first copy's
 * work runs waits for it (and then finds the id seen), instead of both finding the id unseen. The SDK's
 * subscription handles up to `prefetch` messages at once, and the broker can hand two copies over in one read.
 *
 *   const once = new OncePerId(seen);
 *   const ran = await once.run(envelope.id, () => handler(envelope)); // false: seen before, not run
 *
 * A work that throws leaves the id unseen (the message is retried); a copy queued behind it then runs.
 */
export class OncePerId {
  /** The newest run per id; each queues behind the one before it. */
  private readonly running = new Map<string, Promise<boolean>>();

  constructor(private readonly seen: SeenStore) {}

  async run(id: string, work: () => void | Promise<void>): Promise<boolean> {
    const previous = this.running.get(id);
    // Set before the first await, so the next copy always finds this one.
    const run = (async () => {
      if (previous) await previous.catch(() => undefined);
      if (await this.seen.has(id)) return false;
      await work();
      await this.seen.add(id);
      return true;
    })();
    this.running.set(id, run);
    try {
      return await run;
    } finally {
      if (this.running.get(id) === run) this.running.delete(id);
    }
  }

  /** Ids with a run in progress or queued. */
  get inProgress(): number {
    return this.running.size;
  }
}
