import type { PublishingLease } from './ports/publishing-lease';

/** What the gate starts and stops: the downlink publishers (DownlinkPublisher, ConsultationDownlinkPublisher). */
export type Startable = Readonly<{ start(): void; stop(): Promise<void> }>;

export type PublishingGateLogger = Readonly<{
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}>;

/**
 * Runs the downlink publishers only while this process holds the publishing lease (ports/publishing-lease.ts):
 * started when it is acquired, stopped when it is lost. Starts and stops are chained, so a start never overlaps
 * the stop before it (a publisher's stop waits for the event in hand). Each change of role is one log line.
 *
 *   const gate = new PublishingGate({ lease, publishers: [directory, consultations], logger });
 *   gate.start();
 *   gate.publishing();            // /health, /metrics
 *   await gate.stopPublishers();  // at shutdown: the publishers end after the event in hand
 *   await gate.release();         // then the lease goes, and another process takes over
 */
export class PublishingGate {
  private chain: Promise<unknown> = Promise.resolve();
  private holding = false;
  private closed = false;

  constructor(
    private readonly deps: Readonly<{
      lease: PublishingLease;
      publishers: readonly Startable[];
      logger?: PublishingGateLogger;
      /** Told each change (the /metrics gauge). */
      onChange?: (publishing: boolean) => void;
    }>,
  ) {}

  publishing(): boolean {
    return this.holding;
  }

  start(): void {
    const log = this.deps.logger;
    this.deps.lease.start({
      acquired: (how) => {
        this.chain = this.chain.then(() => {
          if (this.closed) return;
          this.show(true);
          for (const p of this.deps.publishers) p.start();
          if (how === 'takeover') {
            log?.warn({ lease: 'downlink' }, 'downlink publishing taken over: this hub process publishes now, from the stored checkpoints (the previous publisher stopped, or its database session ended)');
          }
        });
      },
      lost: (reason) => {
        this.show(false);
        log?.warn({ lease: 'downlink', reason }, 'downlink publishing stopped: this hub process lost the publishing lease (its database session ended, or it had no broker connection: see reason); another process takes over, or this one again once it can');
        this.chain = this.chain.then(() => this.stopAll()).catch(() => undefined);
      },
      standby: () => log?.info({ lease: 'downlink' }, 'downlink publishing: another hub process on this store publishes; this one stands by and takes over when that one stops'),
    });
  }

  /** Stops the publishers (after the event in hand) and keeps them stopped; the lease is kept until release(). */
  stopPublishers(): Promise<void> {
    this.closed = true;
    const stopped = this.chain.then(() => this.stopAll());
    this.chain = stopped.catch(() => undefined);
    return stopped;
  }

  /** Gives the lease up: another process may take over now. */
  async release(): Promise<void> {
    this.closed = true;
    await this.deps.lease.stop();
    this.show(false);
  }

  private async stopAll(): Promise<void> {
    await Promise.all(this.deps.publishers.map((p) => p.stop()));
  }

  private show(on: boolean): void {
    this.holding = on;
    this.deps.onChange?.(on);
  }
}
