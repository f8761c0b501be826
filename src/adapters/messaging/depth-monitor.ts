import { DepthUnknownError, type DepthUnknownReason } from './broker-statistics';

/** What the monitor shows: a depth read from the broker now connected, or none (and why). */
export type DepthSample<T extends number | object = number> = Readonly<{ depth: T; at: number }> | Readonly<{ depth: null; reason: DepthUnknownReason }>;

/** How the log names what is read: `the depth of <what> cannot be read from the broker: <metric> is not reported`. */
export type DepthWording = Readonly<{ what: string; metric: string; readme: string; context: Readonly<Record<string, unknown>> }>;

export type DepthMonitorDependencies<T extends number | object> = Readonly<{
  read: () => Promise<T>;
  /** The hub's connection: a reading runs only while connected; a lost connection drops the depth at once. */
  connection: Readonly<{
    isConnected(): boolean;
    on(event: 'connected' | 'disconnected', listener: () => void): unknown;
    off(event: 'connected' | 'disconnected', listener: () => void): unknown;
  }>;
  everyMs: number;
  onSample: (sample: DepthSample<T>) => void;
  logger?: Readonly<{ warn(obj: object, msg: string): void; info(obj: object, msg: string): void }>;
  wording: DepthWording;
  now?: () => number;
}>;

/**
 * Reads a depth (the dead letter queue's, the downlink queues') every `everyMs` while connected, and at once on every (re)connection, so that
 * after a failover the figure is the new broker's. A reading that fails, or a connection lost (a reading begun on it
 * included), makes the depth unknown (`onSample` with depth null): never the old broker's figure, never a stale one.
 * A broker that cannot answer (no statistics plugin, the request refused) is one warning, and one info line once
 * it answers again; a lost connection logs nothing here (the connection logs its own).
 */
export class DepthMonitor<T extends number | object> {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private reading: Promise<DepthSample<T>> | null = null;
  private readingGeneration = 0;
  /** Bumped on every lost connection: a reading begun before it is not shown. */
  private generation = 0;
  private warned: DepthUnknownReason | null = null;
  private readonly now: () => number;

  constructor(private readonly deps: DepthMonitorDependencies<T>) {
    this.now = deps.now ?? Date.now;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.deps.connection.on('connected', this.onConnected);
    this.deps.connection.on('disconnected', this.onDisconnected);
    this.deps.onSample({ depth: null, reason: 'not_connected' });
    void this.tick();
  }

  /**
   * Stops reading. A reading under way is not waited for (one a broker does not answer takes its 5 s timeout; a hub
   * that stops closes the connection, which ends it at once) and shows nothing when it ends.
   */
  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.deps.connection.off('connected', this.onConnected);
    this.deps.connection.off('disconnected', this.onDisconnected);
  }

  /** One reading now (or the one under way on this connection: one begun on a lost one is followed by a new one). */
  readNow(): Promise<DepthSample<T>> {
    if (this.reading && this.readingGeneration === this.generation) return this.reading;
    const previous = this.reading;
    this.readingGeneration = this.generation;
    const reading: Promise<DepthSample<T>> = (previous ? previous.catch(() => undefined).then(() => this.readOnce()) : this.readOnce()).finally(() => {
      if (this.reading === reading) this.reading = null;
    });
    this.reading = reading;
    return reading;
  }

  private readonly onConnected = (): void => {
    clearTimeout(this.timer);
    void this.tick();
  };

  private readonly onDisconnected = (): void => {
    this.generation++;
    this.deps.onSample({ depth: null, reason: 'not_connected' });
  };

  private async tick(): Promise<void> {
    if (!this.running) return;
    if (this.deps.connection.isConnected()) await this.readNow();
    if (!this.running) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), this.deps.everyMs);
    this.timer.unref?.();
  }

  private async readOnce(): Promise<DepthSample<T>> {
    const generation = this.generation;
    let sample: DepthSample<T>;
    let detail = '';
    try {
      sample = { depth: await this.deps.read(), at: this.now() };
    } catch (error) {
      sample = { depth: null, reason: error instanceof DepthUnknownError ? error.reason : 'unexpected_reply' };
      detail = (error as Error).message;
    }
    if (!this.running) return sample;
    // Begun on a connection lost since: whatever it says is the old broker's.
    if (generation !== this.generation) sample = { depth: null, reason: 'connection_lost' };
    const w = this.deps.wording;
    if (sample.depth !== null && this.warned !== null) {
      this.warned = null;
      this.deps.logger?.info({ ...w.context }, `the depth of ${w.what} is read from the broker again`);
    } else if ('reason' in sample && sample.reason !== 'not_connected' && sample.reason !== 'connection_lost' && this.warned !== sample.reason) {
      this.warned = sample.reason;
      const cause = sample.reason === 'store_unavailable' ? " (the hub's store did not list its systems)" : ' from the broker';
      this.deps.logger?.warn(
        { ...w.context, reason: sample.reason, err: detail },
        `the depth of ${w.what} cannot be read${cause}: ${w.metric} is not reported (README: "${w.readme}")`,
      );
    }
    this.deps.onSample(sample);
    return sample;
  }
}
