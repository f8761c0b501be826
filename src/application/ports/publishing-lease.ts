/**
 * Who publishes the downlink. Several hub processes may share one store, and each has the publishers; only the
 * holder of the lease runs them, so each message leaves once (not once per process) and a process starting up
 * does not re-send what another already sent.
 *
 *   lease.start({ acquired: () => publishers.start(), lost: () => publishers.stop() });
 *   lease.held();        // for /health and /metrics
 *   await lease.stop();  // gives the lease up (after the caller stopped its publishers)
 *
 * `acquired` and `lost` alternate, starting with `acquired` ('takeover' when this process had found the lease held
 * by another, or had lost it, before); `lost` is not called by stop(). A holder may learn
 * that it lost the lease only after another process got it: publishers must tolerate a short overlap (the
 * checkpoint only grows, messages keep their ids, receivers dedupe).
 */
export interface PublishingLease {
  start(listener: PublishingLeaseListener): void;
  held(): boolean;
  stop(): Promise<void>;
}

export type PublishingLeaseListener = Readonly<{
  acquired(how: 'first' | 'takeover'): void;
  lost(reason: string): void;
  /** Another process holds the lease: called once each time this process starts waiting for it. */
  standby?(): void;
}>;

/**
 * A lease no other process competes for: held from start() to stop(). Right for a store only one process opens
 * (the embedded SQLite store, memory). On a shared store with no place for a lease (EventStoreDB without
 * RTS_POSTGRES_URL) each process holds its own, so every process publishes, as before there was a lease.
 */
export class SoleProcessLease implements PublishingLease {
  private holding = false;

  start(listener: PublishingLeaseListener): void {
    if (this.holding) return;
    this.holding = true;
    listener.acquired('first');
  }

  held(): boolean {
    return this.holding;
  }

  async stop(): Promise<void> {
    this.holding = false;
  }
}
