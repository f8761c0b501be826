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
 * The publishers store their checkpoint once per page of events (at the head, and within a long page about once a second), so "behind" is never less than
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

/**
 * A publisher whose lag to report: a fixed name (a metric label), where its checkpoint is read, and optionally how
 * many messages the broker has accepted from it so far (a count that only grows; see `countingSends`).
 */
export type LaggingPublisher = Readonly<{ name: string; checkpoint(): Promise<bigint>; sent?(): number }>;

/**
 * An outbox that counts the messages the broker accepted through it: progress inside a page. A page of 200 events
 * fanned out to 80 systems, signed and encrypted for each, is 16,000 messages and takes longer than a minute on 2
 * cores; its checkpoint only moves at its end, and the publisher was reported stalled while it delivered ~45,000
 * messages a minute.
 */
export const countingSends = <O extends { send(queue: string, envelope: never): Promise<void> }>(outbox: O): { outbox: O; sent(): number } => {
  let sent = 0;
  const counted = {
    send: async (queue: string, envelope: never) => {
      await outbox.send(queue, envelope);
      sent += 1;
    },
  } as unknown as O;
  return { outbox: counted, sent: () => sent };
};

export type DownlinkLagMonitorDependencies = Readonly<{
  store: Pick<EventStore, 'headPosition' | 'readAll'>;
  clock: Clock;
  publishers: readonly LaggingPublisher[];
  /** False on EventStoreDB: its positions are log offsets, not a count of events (`events` is then null). */
  positionsCountEvents: boolean;
  /** Each publisher's lag after a sample; null at stop (the hub stopping: this process reports none). */
  onSample: (publisher: string, lag: DownlinkLag | null) => void;
  /** Sample this often while running (default 5000 ms). */
  everyMs?: number;
  /**
   * A publisher behind the store whose checkpoint has not moved, and which had no message accepted (when it counts
   * them), for this long is stalled (default 60000 ms): it makes no progress, whatever the reason (the broker gone,
   * or connected and not reading, or no process running it). One at the head never is. The count is this process's
   * sends: in a process that does not publish it stands still, and the stored checkpoint alone tells.
   */
  stallAfterMs?: number;
  /** Told when a publisher becomes stalled (with how it stands then) and when it moves again; must not throw. */
  onStall?: (publisher: string, stall: DownlinkStall | null) => void;
}>;

/** A stalled publisher: its lag at the last sample, and how long its checkpoint has stood still (seconds). */
export type DownlinkStall = Readonly<{ lag: DownlinkLag; stillForSeconds: number }>;

/**
 * Where a publisher's checkpoint and its count of accepted messages stood, since when (ms on the clock); and whether
 * it counts as stalled now.
 */
type Progress = { checkpoint: bigint; sent: number; sinceMs: number; stalled: boolean };

/**
 * The stall rule, one sample at a time: behind, with the same checkpoint and no message accepted by the broker, for
 * `stallAfterMs` or longer. The time runs from the last sample at which either had moved or the publisher was at the
 * head (a quiet hub). `sent` is 0 for a publisher that does not count its messages (the checkpoint alone then).
 */
export const nextProgress = (previous: Progress | undefined, checkpoint: bigint, lag: DownlinkLag, nowMs: number, stallAfterMs: number, sent = 0): Progress => {
  const behind = lag.events !== null ? lag.events > 0n : lag.seconds > 0;
  if (!behind || previous === undefined || previous.checkpoint !== checkpoint || previous.sent !== sent) return { checkpoint, sent, sinceMs: nowMs, stalled: false };
  return { ...previous, stalled: nowMs - previous.sinceMs >= stallAfterMs };
};

/**
 * Samples the publishers' lag every few seconds while it runs, for /metrics. It reads the publishers' stored
 * checkpoints, which on a PostgreSQL store the hub processes share, so it runs in every hub process whether or not
 * that process publishes (hub-messaging.ts starts it with messaging, not with the publishers): when no process
 * publishes (the publishing lock left with an orphaned session, every hub standing by) the lag grows, and the stall
 * is told, at every hub. Before, only the publishing process sampled and each standby reported 0, so a deployment
 * where nobody published looked healthy. At stop it reports null (0). A sample that fails (the store away) leaves
 * the last values: the publishers' own failures are in the log, and the store's in /health.
 *
 * It also tells a stalled publisher (see `stallAfterMs`) for /health: a lag alone says little (a burst being sent),
 * a checkpoint that stands still while there is lag says nothing is getting out. A broker that kept the hub's
 * connection open and stopped reading it left the lag at ~10,000 events for ten minutes while /health said ok.
 *
 *   const monitor = new DownlinkLagMonitor({ store, clock, publishers: [{ name: 'directory', checkpoint: () => p.checkpoint() }], positionsCountEvents: true, onSample });
 *   monitor.start(); ... await monitor.stop();
 *   await monitor.sample();   // one sample now (tests)
 */
export class DownlinkLagMonitor {
  private timer: NodeJS.Timeout | null = null;
  private sampling: Promise<void> | null = null;
  private readonly progress = new Map<string, Progress>();

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
    // Stopped (the hub stopping): nothing of this process is stalled, and a later start measures afresh.
    for (const [name, progress] of this.progress) if (progress.stalled) this.tellStall(name, null);
    this.progress.clear();
  }

  /** The publishers stalled at the last sample (none while stopped). */
  stalled(): readonly string[] {
    return [...this.progress].filter(([, p]) => p.stalled).map(([name]) => name);
  }

  /** One sample of every publisher (the one in progress, if any). */
  sample(): Promise<void> {
    this.sampling ??= (async () => {
      for (const p of this.deps.publishers) {
        try {
          const checkpoint = await p.checkpoint();
          const now = this.deps.clock.now();
          const lag = await downlinkLag(this.deps.store, checkpoint, now, this.deps.positionsCountEvents);
          this.deps.onSample(p.name, lag);
          const before = this.progress.get(p.name);
          const after = nextProgress(before, checkpoint, lag, now.toMillis(), this.deps.stallAfterMs ?? DEFAULT_STALL_AFTER_MS, p.sent?.() ?? 0);
          this.progress.set(p.name, after);
          if (after.stalled !== (before?.stalled ?? false)) {
            this.tellStall(p.name, after.stalled ? { lag, stillForSeconds: (now.toMillis() - after.sinceMs) / 1000 } : null);
          }
        } catch {
          // the store away: the last values stay (see above)
        }
      }
    })().finally(() => {
      this.sampling = null;
    });
    return this.sampling;
  }

  private tellStall(publisher: string, stall: DownlinkStall | null): void {
    try {
      this.deps.onStall?.(publisher, stall);
    } catch {
      // an observer's failure must not stop the sampling
    }
  }
}

/** RTS_DOWNLINK_STALL_AFTER_MS's default: a page of the publisher's events goes out well within a minute. */
export const DEFAULT_STALL_AFTER_MS = 60_000;
