import type { CheckpointStore } from './ports/downlink-outbox';

/** Positions a subscriber may run ahead of its stored checkpoint over events that changed nothing for it. */
export const CHECKPOINT_LAG = 5_000n;

/**
 * A background subscriber's checkpoint (projector, downlink publisher) that is stored when it matters and
 * otherwise kept in memory for a while.
 *
 * Storing the position after every page costs a write transaction per page, on the event loop, for each
 * subscriber, even when the page held nothing for it (a hub's consultation projection sees mostly expert
 * events). Events that changed nothing may be read again after a restart at no cost, so their position is only
 * remembered (`pass`), and stored with the next change, once CHECKPOINT_LAG positions have gathered, or at stop
 * (`flush`). A position whose event had an effect (a row written, a message sent) is stored at once, by the
 * caller (`stored`) or here (`save`).
 */
export class LazyCheckpoint {
  /** The position last read from or written to the store. */
  private written: bigint | undefined;
  /** Passed to, not stored. */
  private ahead: bigint | undefined;

  constructor(
    private readonly store: CheckpointStore,
    private readonly name: string,
  ) {}

  /** Where to read on from: the stored position (read again each time), or further, over passed events. */
  async position(): Promise<bigint> {
    if (this.ahead !== undefined) return this.ahead;
    this.written = await this.store.get(this.name);
    return this.written;
  }

  /** Store `position` now. */
  async save(position: bigint): Promise<void> {
    await this.store.set(this.name, position);
    this.stored(position);
  }

  /** The caller has stored `position` itself (e.g. with a projection's rows, in one transaction). */
  stored(position: bigint): void {
    this.written = position;
    this.ahead = undefined;
  }

  /** Moved past events that changed nothing: remembered; stored once CHECKPOINT_LAG positions have gathered. */
  async pass(position: bigint): Promise<void> {
    if (this.written !== undefined && position - this.written < CHECKPOINT_LAG) this.ahead = position;
    else await this.save(position);
  }

  /** Store a position kept in memory (at stop). */
  async flush(): Promise<void> {
    if (this.ahead !== undefined) await this.save(this.ahead);
  }

  /** Forget what is in memory (the store was reset). */
  forget(): void {
    this.written = undefined;
    this.ahead = undefined;
  }
}
