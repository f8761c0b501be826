/**
 * Handles work concurrently, except that work sharing a key runs one at a time, in the order it arrived; and work
 * that failed and will come again (a message handed back to the broker) keeps its place until it has.
 *
 *   const order = new OrderedByKey();
 *   // for each message, in the order it was received:
 *   const place = order.arrive();                      // synchronously, on receipt
 *   ... decode (concurrently with the others) ...
 *   const outcome = await place.enter(keys, envelopeId, () => handle(), (outcome) => comesBack(outcome), { tag, waitsFor, onWait });
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
 * - A place runs once it is first in each of its lanes (a batch of experts has one key per expert).
 * - A place whose task failed in a way that brings it back (`comesBack(value)`, or the task threw) keeps its
 *   lanes: the places behind it, and those arriving later, wait until it comes again (a place entering with the
 *   same `id`, which takes its place) and no longer comes back, or until `redeliveryWaitMs` passed without it
 *   (it went to another consumer, or was dead-lettered unhandled).
 * - Except for what it waits for: a failed place whose `waitsFor(value)` names a tag (a batch refused because its
 *   join request is not in yet: 'system.join.requested') lets the first place with that tag in its lanes (all of
 *   whose keys it shares) go ahead of it, also one that arrives later. Kept in place, a batch sent just before its
 *   join request held the request up until the batch had used up its attempts, and was dead-lettered for good.
 * - `onWait(true)` tells that a place waits for its turn (its keys are busy), `onWait(false)` that it runs: the
 *   uplink consumer does not count a waiting message against its credit. Messages waiting in one lane held the
 *   consumer's whole credit: 250 failing changes of one expert kept every other system's messages from being
 *   delivered for minutes.
 * - `giveUpAwaited()`: the consumer's credit is all held by waiting places (a flood in one lane): the failed place with
 *   the most places waiting behind it is no longer waited for (it could not come again), and enters as a newcomer when
 *   it comes again; the other lanes keep their order.
 */
export interface Place {
  /** Run `task` once the earlier places sharing a key are done (see the class comment); its value, or its error. */
  enter<T>(keys: readonly string[], id: string, task: () => Promise<T>, comesBack: (value: T) => boolean, options?: EnterOptions<T>): Promise<T>;
  /** This place will not run anything: the places after it need not wait for it. */
  leave(): void;
}

export type EnterOptions<T> = Readonly<{
  /** What kind of work this is (the uplink: the message type), for `waitsFor`. */
  tag?: string;
  /** When the task failed and comes back: the tag of the work it waits for, which may then go ahead of it. */
  waitsFor?: (value: T | undefined) => string | undefined;
  /** Told `true` when the place has to wait for its turn, `false` when it then runs (not called when it runs at once). */
  onWait?: (waiting: boolean) => void;
}>;

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

type Entry = {
  readonly id: string;
  readonly tag: string | undefined;
  readonly keys: readonly string[];
  state: 'waiting' | 'running' | 'awaited';
  /** While waiting: lets the place run. */
  start?: () => void;
  /** While awaited: the tag of what it waits for, if any. */
  waitsFor?: string;
  timer?: ReturnType<typeof setTimeout>;
};

export class OrderedByKey {
  private readonly redeliveryWaitMs: number;
  /** Resolves when every place that arrived so far has entered its lanes or left. */
  private declared: Promise<void> = Promise.resolve();
  /** Per key, its places in order (the first runs or is awaited), while there are any. */
  private readonly lanes = new Map<string, Entry[]>();
  /** Failed places waited for, by id. */
  private readonly awaited = new Map<string, Entry>();
  private closed = false;
  /** Places started so far (giveUpAwaited: whether giving one up let anything run). */
  private starts = 0;

  constructor(options: OrderedByKeyOptions = {}) {
    this.redeliveryWaitMs = options.redeliveryWaitMs ?? 30_000;
  }

  /** Lanes with work in them or waiting, and failed places waited for (tests, metrics). */
  get size(): Readonly<{ lanes: number; awaited: number }> {
    return { lanes: this.lanes.size, awaited: new Set([...this.awaited.values()].flatMap((e) => e.keys)).size };
  }

  /**
   * Stop waiting: every failed place is given up on, and the tasks that have not started are not run (their
   * `enter` rejects with OrderClosedError). For a consumer that stops: it hands those messages back.
   */
  close(): void {
    this.closed = true;
    for (const entry of [...this.awaited.values()]) this.remove(entry);
    for (const lane of [...this.lanes.values()]) for (const entry of [...lane]) this.pump(entry);
  }

  /**
   * Stop waiting for the failed place whose lanes hold the most places behind it (as close() does for all, but only
   * that one, and the order goes on): the places behind it run, and it enters as a newcomer when it comes again, behind
   * what arrived meanwhile. For a consumer whose credit is used up by places that wait for their turn (QueueConsumer's
   * onSaturated: a flood in one lane): the failed place, handed back, cannot come again until one of them is settled,
   * and none of them can run while it is waited for. Only the one with the longest wait behind it: giving up every
   * lane's failed place let another system's second change of an expert run before its first, failed one came again,
   * and the older profile won. Called again while the consumer stays saturated. If the place next in that lane still
   * waits for another failed place (it has several keys), that one is given up too, and so on until a place runs.
   * Returns how many were given up (0 when none has anything waiting behind it).
   */
  giveUpAwaited(): number {
    // Until a place starts: one given up whose next place still waits for another failed place (a batch, or any place
    // with several keys) lets nothing run, so no message is settled and none comes, and the consumer, which asks only
    // as it tops up its credit, would not ask again until that other failed place's redeliveryWaitMs were over.
    const started = this.starts;
    let given = 0;
    while (this.starts === started) {
      let longest: Entry | undefined;
      let behind = 0;
      for (const entry of this.awaited.values()) {
        const waiting = this.behind(entry);
        if (longest === undefined || waiting > behind) [longest, behind] = [entry, waiting];
      }
      if (longest === undefined || behind === 0) break;
      this.remove(longest);
      given += 1;
    }
    return given;
  }

  /**
   * The places behind a failed place in its lanes, each once (not what went ahead of it: what it waits for): a place
   * sharing several of its keys (a batch of the same experts) is one message waiting, not one per key. Counted per lane, one batch behind a failed batch of 25
   * experts outweighed 25 changes waiting behind the flood's failed one, and the batch's lane was given up instead.
   */
  private behind(entry: Entry): number {
    const places = new Set<Entry>();
    for (const key of entry.keys) {
      const lane = this.lanes.get(key) ?? [];
      // Behind it only: what it waits for (a join request) goes ahead of it and may run there.
      for (const e of lane.slice(lane.indexOf(entry) + 1)) places.add(e);
    }
    return places.size;
  }

  arrive(): Place {
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
      enter: async <T>(keys: readonly string[], id: string, task: () => Promise<T>, comesBack: (value: T) => boolean, options: EnterOptions<T> = {}): Promise<T> => {
        use();
        await before;
        let entry: Entry;
        try {
          entry = this.place([...new Set(keys)], id, options.tag);
        } finally {
          declare();
        }
        let waited = false;
        await new Promise<void>((resolve) => {
          entry.start = resolve;
          this.pump(entry);
          if (entry.start !== undefined && options.onWait) {
            waited = true;
            options.onWait(true);
          }
        });
        if (waited) options.onWait?.(false);
        if (this.closed) {
          this.remove(entry);
          throw new OrderClosedError();
        }
        entry.state = 'running';
        let value: T | undefined;
        let failure: { error: unknown } | undefined;
        try {
          value = await task();
        } catch (error) {
          failure = { error };
        }
        if (!this.closed && (failure !== undefined || comesBack(value as T))) this.keepPlace(entry, options.waitsFor?.(value));
        else this.remove(entry);
        if (failure !== undefined) throw failure.error;
        return value as T;
      },
    };
  }

  /** The entry of a place entering its lanes: the failed one it comes again as, or a new one. */
  private place(keys: readonly string[], id: string, tag: string | undefined): Entry {
    const again = this.awaited.get(id);
    if (again) {
      this.awaited.delete(id);
      clearTimeout(again.timer);
      again.state = 'waiting';
      again.waitsFor = undefined;
      return again;
    }
    if (this.closed) return { id, tag, keys, state: 'waiting' };
    const entry: Entry = { id, tag, keys, state: 'waiting' };
    // What a failed place of these lanes waits for goes just before it; anything else at the end.
    const target = tag === undefined ? undefined : this.waitingFor(keys, tag);
    for (const key of keys) {
      const lane = this.lanes.get(key) ?? [];
      const at = target ? lane.indexOf(target) : -1;
      lane.splice(at >= 0 ? at : lane.length, 0, entry);
      this.lanes.set(key, lane);
    }
    return entry;
  }

  /** The failed place waiting for `tag` that a place with these keys may go ahead of (all its keys are the failed one's). */
  private waitingFor(keys: readonly string[], tag: string): Entry | undefined {
    const lane = this.lanes.get(keys[0] ?? '');
    const target = lane?.find((e) => e.state === 'awaited' && e.waitsFor === tag);
    return target && keys.every((k) => target.keys.includes(k)) ? target : undefined;
  }

  /** Starts a waiting place that is first in each of its lanes. */
  private pump(entry: Entry): void {
    const start = entry.start;
    if (entry.state !== 'waiting' || !start) return;
    if (this.closed || entry.keys.every((key) => this.lanes.get(key)?.[0] === entry)) {
      entry.start = undefined;
      this.starts += 1;
      start();
    }
  }

  private remove(entry: Entry): void {
    clearTimeout(entry.timer);
    if (this.awaited.get(entry.id) === entry) this.awaited.delete(entry.id);
    const next = new Set<Entry>();
    for (const key of entry.keys) {
      const lane = this.lanes.get(key);
      if (!lane) continue;
      const at = lane.indexOf(entry);
      if (at >= 0) lane.splice(at, 1);
      if (lane.length === 0) this.lanes.delete(key);
      else next.add(lane[0]!);
    }
    for (const e of next) this.pump(e);
  }

  /** A failed place keeps its lanes until it comes again and succeeds, or the wait is over. */
  private keepPlace(entry: Entry, waitsFor: string | undefined): void {
    entry.state = 'awaited';
    entry.waitsFor = waitsFor;
    this.awaited.set(entry.id, entry);
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => this.remove(entry), this.redeliveryWaitMs);
    entry.timer.unref?.();
    if (waitsFor === undefined) return;
    // What it waits for may already wait behind it: it goes first.
    const lane = this.lanes.get(entry.keys[0] ?? '') ?? [];
    const mine = lane.indexOf(entry);
    const ahead = lane.slice(mine + 1).find((e) => e.state === 'waiting' && e.tag === waitsFor && e.keys.every((k) => entry.keys.includes(k)));
    if (!ahead) return;
    for (const key of ahead.keys) {
      const l = this.lanes.get(key)!;
      l.splice(l.indexOf(ahead), 1);
      l.splice(l.indexOf(entry), 0, ahead);
    }
    this.pump(ahead);
  }
}
