import type { PublishingLease, PublishingLeaseListener } from './ports/publishing-lease';

export type BrokerGatedLeaseLogger = Readonly<{ warn(obj: object, msg: string): void; info(obj: object, msg: string): void }>;

/** How long a holder may be without a broker before it gives the lease up: longer than a broker group's takeover. */
export const BROKER_LOSS_GRACE_MS = 30_000;

/**
 * A shared publishing lease that only a hub process with a broker connection competes for. One hub cut off from
 * every broker (a discovery group that matches none, a firewall) took the lease at start and held it: the downlink
 * stalled for the whole deployment while the other hubs, connected, stood by (a review found it). Now a process
 * competes once it is connected, and gives the lease up after `graceMs` without a broker (a failover's few seconds
 * keep it), so a connected process takes over; connected again, it competes again.
 *
 *   const lease = new BrokerGatedLease(postgresLease, { connected: () => connection.isConnected() });
 *   connection.on('connected', () => lease.brokerChanged());
 *   connection.on('disconnected', () => lease.brokerChanged());
 *
 * Only for a lease other processes compete for (PostgreSQL's): a sole process (SoleProcessLease) publishes into its
 * sender's retries whatever the broker does, as before.
 */
export class BrokerGatedLease implements PublishingLease {
  private listener: PublishingLeaseListener | null = null;
  private competing = false;
  private heldBefore = false;
  private stopped = false;
  private graceTimer: NodeJS.Timeout | undefined;
  /** Changes of competing, one at a time (the inner lease's stop() waits for its session to close). */
  private chain: Promise<void> = Promise.resolve();
  private readonly graceMs: number;

  constructor(
    private readonly inner: PublishingLease,
    private readonly deps: Readonly<{ connected: () => boolean; graceMs?: number; logger?: BrokerGatedLeaseLogger }>,
  ) {
    this.graceMs = deps.graceMs ?? BROKER_LOSS_GRACE_MS;
  }

  start(listener: PublishingLeaseListener): void {
    if (this.listener !== null) return;
    this.listener = listener;
    if (this.deps.connected()) this.compete();
    else this.deps.logger?.info({ lease: 'downlink' }, 'downlink publishing: waits for a broker connection before it competes for the publishing lease');
  }

  held(): boolean {
    return this.competing && this.inner.held();
  }

  /** The broker connection came or went: compete now, or give the lease up after the grace period. */
  brokerChanged(): void {
    if (this.stopped || this.listener === null) return;
    if (this.deps.connected()) {
      clearTimeout(this.graceTimer);
      this.graceTimer = undefined;
      if (!this.competing) this.compete();
      return;
    }
    if (!this.competing || this.graceTimer !== undefined) return;
    this.graceTimer = setTimeout(() => {
      this.graceTimer = undefined;
      if (!this.stopped && !this.deps.connected()) this.withdraw();
    }, this.graceMs);
    this.graceTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
    await this.chain;
    if (this.competing) {
      this.competing = false;
      await this.inner.stop();
    }
  }

  private compete(): void {
    this.competing = true;
    this.chain = this.chain.then(() => {
      if (this.stopped || !this.competing) return;
      const listener = this.listener!;
      this.inner.start({
        // A lease held before this process withdrew and competed again is taken over, not taken first.
        acquired: (how) => {
          const taken = this.heldBefore ? 'takeover' : how;
          this.heldBefore = true;
          listener.acquired(taken);
        },
        lost: (reason) => listener.lost(reason),
        ...(listener.standby ? { standby: () => listener.standby!() } : {}),
      });
    });
  }

  private withdraw(): void {
    this.competing = false;
    this.chain = this.chain.then(async () => {
      const held = this.inner.held();
      await this.inner.stop();
      // The inner stop() says nothing (the port's rule); the gate must stop its publishers, as on any loss.
      if (held) this.listener!.lost(`no broker connection for ${Math.round(this.graceMs / 1000)} s: another hub process that has one publishes`);
      else this.deps.logger?.info({ lease: 'downlink' }, 'downlink publishing: no broker connection, so this hub process stops competing for the publishing lease until it has one');
    });
  }
}
