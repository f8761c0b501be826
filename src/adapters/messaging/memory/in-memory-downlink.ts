import type { DownlinkEnvelope } from '../../../application/directory/directory-messages';
import type { CheckpointStore, DownlinkOutbox } from '../../../application/ports/downlink-outbox';

/**
 * In-memory stand-ins for the downlink side, for unit tests and broker-less runs.
 * - InMemoryOutbox records every send per queue (resends included); `received(queue)` is what a receiver that
 *   dedupes by message id ends up with. `failAfter(n)` makes the n+1-th send from now reject (a broker outage).
 * - InMemoryCheckpointStore keeps named positions; share one instance between publisher instances to play a
 *   restart.
 */
export class InMemoryOutbox implements DownlinkOutbox {
  private readonly queues = new Map<string, DownlinkEnvelope[]>();
  private remainingBeforeFailure: number | null = null;
  sends = 0;

  async send(queue: string, envelope: DownlinkEnvelope): Promise<void> {
    if (this.remainingBeforeFailure !== null) {
      if (this.remainingBeforeFailure <= 0) throw new Error('outbox unavailable (simulated)');
      this.remainingBeforeFailure--;
    }
    // Round-trip through JSON, as a broker would, so nothing shared by reference survives.
    const copy = JSON.parse(JSON.stringify(envelope)) as DownlinkEnvelope;
    this.sends++;
    const list = this.queues.get(queue) ?? [];
    list.push(copy);
    this.queues.set(queue, list);
  }

  failAfter(sends: number | null): void {
    this.remainingBeforeFailure = sends;
  }

  /** Every message sent to `queue`, resends included, in send order. */
  sent(queue: string): readonly DownlinkEnvelope[] {
    return this.queues.get(queue) ?? [];
  }

  /** The messages of `queue` deduplicated by envelope id (first copy kept), in send order. */
  received(queue: string): readonly DownlinkEnvelope[] {
    const seen = new Set<string>();
    return this.sent(queue).filter((m) => (seen.has(m.id) ? false : (seen.add(m.id), true)));
  }

  queueNames(): readonly string[] {
    return [...this.queues.keys()];
  }
}

export class InMemoryCheckpointStore implements CheckpointStore {
  private readonly positions = new Map<string, bigint>();

  async get(name: string): Promise<bigint> {
    return this.positions.get(name) ?? 0n;
  }

  async set(name: string, position: bigint): Promise<void> {
    this.positions.set(name, position);
  }
}
