import { DateTime } from 'luxon';
import type { Clock } from '../ports/clock';
import type { EventStore } from '../ports/event-store';

/**
 * How far a downlink publisher is behind the store: what it has yet to go through after its stored checkpoint.
 *   events   the store's head position less the checkpoint: the events appended after it (on SQLite and
 *            PostgreSQL positions are numbered one by one; PostgreSQL's sequence may skip a number after a rolled-back
 *            append, so it is an upper bound there); null where positions are not a count (EventStoreDB's are byte
 *            offsets in its log)
 *   seconds  how long ago the first event after the checkpoint was recorded: how late what is sent now is (0 when
 *            the publisher is at the head)
 * The publishers store their checkpoint once per page of events (and at the head), so "behind" is never less than
 * what is still to send, and at most a page more.
 *
 * Two cheap reads, whatever the lag: the head position and one event by position. Never a count over the stretch.
 */
export type DownlinkLag = Readonly<{ events: bigint | null; seconds: number }>;

export const downlinkLag = async (store: Pick<EventStore, 'headPosition' | 'readAll'>, checkpoint: bigint, now: DateTime, positionsCountEvents: boolean): Promise<DownlinkLag> => {
  const head = await store.headPosition();
  if (head <= checkpoint) return { events: positionsCountEvents ? 0n : null, seconds: 0 };
  const [first] = await store.readAll({ after: checkpoint, maxCount: 1 });
  const recorded = first === undefined ? null : DateTime.fromISO(first.recordedAt);
  // A clock a little behind the store's (PostgreSQL's, another hub's) would make it negative: 0 then.
  const seconds = recorded?.isValid ? Math.max(0, now.diff(recorded).as('seconds')) : 0;
  return { events: positionsCountEvents ? head - checkpoint : null, seconds };
};

/** A publisher whose lag to report: a fixed name (a metric label) and where its checkpoint is read. */
export type LaggingPublisher = Readonly<{ name: string; checkpoint(): Promise<bigint> }>;

export type DownlinkLagMonitorDependencies = Readonly<{
  store: Pick<EventStore, 'headPosition' | 'readAll'>;
  clock: Clock;
  publishers: readonly LaggingPublisher[];
  /** False on EventStoreDB: its positions are log offsets, not a count of events (`events` is then null). */
  positionsCountEvents: boolean;
  /** Each publisher's lag after a sample; null at stop (this process does not publish now). */
  onSample: (publisher: string, lag: DownlinkLag | null) => void;
  /** Sample this often while running (default 5000 ms). */
  everyMs?: number;
}>;

/**
 * Samples the publishers' lag every few seconds while it runs, for /metrics. Started and stopped with the
 * publishers (the PublishingGate holds it beside them), so only the process that publishes reports a lag; at stop
 * it reports null (a standby's view: 0). A sample that fails (the store away) leaves the last values: the
 * publishers' own failures are in the log, and the store's in /health.
 *
 *   const monitor = new DownlinkLagMonitor({ store, clock, publishers: [{ name: 'directory', checkpoint: () => p.checkpoint() }], positionsCountEvents: true, onSample });
 *   monitor.start(); ... await monitor.stop();
 *   await monitor.sample();   // one sample now (tests)
 */
export class DownlinkLagMonitor {
  private timer: NodeJS.Timeout | null = null;
  private sampling: Promise<void> | null = null;

  constructor(private readonly deps: DownlinkLagMonitorDependencies) {}

  start(): void {
    if (this.timer !== null) return;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), this.deps.everyMs ?? 5000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer === null) return;
    clearInterval(this.timer);
    this.timer = null;
    await this.sampling;
    for (const p of this.deps.publishers) this.deps.onSample(p.name, null);
  }

  /** One sample of every publisher (the one in progress, if any). */
  sample(): Promise<void> {
    this.sampling ??= (async () => {
      for (const p of this.deps.publishers) {
        try {
          const lag = await downlinkLag(this.deps.store, await p.checkpoint(), this.deps.clock.now(), this.deps.positionsCountEvents);
          this.deps.onSample(p.name, lag);
        } catch {
          // the store away: the last values stay (see above)
        }
      }
    })().finally(() => {
      this.sampling = null;
    });
    return this.sampling;
  }
}
