import { BackgroundDrain } from '../drain-loop';
import type { PreparedDownlink } from '../ports/downlink-outbox';
import type { EventStore } from '../ports/event-store';
import type { FailureLogger } from '../repeated-failure-log';
import type { HeldDownlinks, HeldEnvelope } from './held-downlinks';

/**
 * Sends the downlink messages held for systems without a valid encryption key (held-downlinks.ts), once they have
 * one, in the order they were held, through the same outbox as the publishers.
 *
 *   const releaser = new HeldDownlinkReleaser({ held, store, prepare: (q, e) => outbox.prepare(q, e), logger });
 *   releaser.start(); ... await releaser.stop();     // beside the publishers, in every process that runs them
 *   await releaser.catchUp();                         // one pass over every system with held messages (tests)
 *
 * A pass: for each system with held messages not yet released, prepare the oldest; without a valid key still,
 * leave the system for the next pass. Otherwise send them one after the other (each resolves only once the
 * broker accepted it; one that can never be sent is dropped, as the outbox drops it), then append
 * DownlinkHeldReleased through the last one with the stream version read: a message held meanwhile makes that
 * append fail, and the pass reads again and sends it too, so nothing held is ever marked released unsent. Another
 * process releasing the same messages sends duplicates at worst (same message ids: receivers dedupe), and their
 * markers are one event (id from system and version).
 *
 * Passes run when something is appended to the store (a key registered, a message held) and every `recheckMs`
 * without that: a key may become valid by its validFrom alone, with no event. After a restart the held messages
 * are found again from the store. A failed send (broker away) is retried on the next pass; the other systems'
 * messages are tried first.
 */
export type HeldDownlinkReleaserDependencies = Readonly<{
  held: HeldDownlinks;
  store: Pick<EventStore, 'headPosition' | 'waitForAppend'>;
  /** The outbox's own preparation (encode for the system's key now), the same the publishers' sends go through. */
  prepare: (queue: string, envelope: HeldEnvelope) => Promise<PreparedDownlink>;
  logger?: FailureLogger;
  /** Pass again after this long without appends (default 5000 ms): keys that become valid by their validFrom. */
  recheckMs?: number;
  /** Let appends gather this long after a wake-up (default 250 ms). */
  coalesceMs?: number;
  /** Held messages read at once per system (default 50: a held snapshot may be near 1 MiB). */
  pageSize?: number;
  /** After each pass: the held messages not yet released, over all systems (a gauge). */
  onPending?: (count: number) => void;
}>;

export class HeldDownlinkReleaser extends BackgroundDrain {
  /** The store's head when the pass in hand began: an append after it wakes the next. */
  private seen = 0n;

  // catchUp(): one pass that began after the call (every system with held messages tried once). stop(): the system
  // in hand is finished (its sends wait for the broker), the rest waits.
  constructor(private readonly deps: HeldDownlinkReleaserDependencies) {
    super(deps.logger, { failed: 'releasing held downlink messages failed; retrying', recovered: 'releasing held downlink messages works again' }, { coalesceMs: deps.coalesceMs ?? 250 });
  }

  protected waitForWork(): Promise<unknown> {
    return this.deps.store.waitForAppend(this.seen, this.deps.recheckMs ?? 5000);
  }

  protected async drain(): Promise<boolean> {
    this.seen = await this.deps.store.headPosition();
    await this.deps.held.catchUp();
    let failure: { error: unknown } | null = null;
    for (const systemId of this.deps.held.pendingSystems()) {
      if (this.stopRequested) break;
      try {
        await this.release(systemId);
      } catch (error) {
        failure ??= { error };
      }
    }
    if (this.deps.onPending) {
      await this.deps.held.catchUp(); // this pass's own release markers
      this.deps.onPending(this.deps.held.pendingCount());
    }
    if (failure) throw failure.error;
    return true;
  }

  private async release(systemId: string): Promise<void> {
    const pageSize = this.deps.pageSize ?? 50;
    let sentThrough = -1n;
    let count = 0;
    for (;;) {
      const { version, messages } = await this.deps.held.unreleased(systemId, pageSize);
      const oldest = messages[0];
      if (version === null || oldest === undefined) return;
      let blocked = false;
      for (const m of messages) {
        if (m.version <= sentThrough) continue; // sent in this release already; its marker lost a race
        const envelope = await this.deps.held.openHeld(m.envelope);
        if (envelope === null) {
          // A report whose consultation's content was erased since it was held: the hub sends no report then.
          sentThrough = m.version;
          count++;
          continue;
        }
        const prepared = await this.deps.prepare(m.queue, envelope);
        if (prepared.kind === 'no_key') {
          blocked = true;
          break;
        }
        if (prepared.kind === 'ready') await prepared.send();
        sentThrough = m.version;
        count++;
      }
      if (sentThrough < oldest.version) return; // still no valid key: the next pass tries again
      if (!(await this.deps.held.markReleased(systemId, sentThrough, version, count))) continue; // held meanwhile: read again
      count = 0;
      if (blocked || this.stopRequested) return;
    }
  }
}
