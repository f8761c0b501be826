import { DrainLoop } from './drain-loop';
import { LazyCheckpoint } from './lazy-checkpoint';
import type { EventStore, RecordedEvent } from './ports/event-store';

export type ProjectorLogger = { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };

/** What a projector needs of a read model: its checkpoint, an atomic apply-and-advance, and a reset. */
export interface ProjectionTarget {
  checkpoint(): Promise<bigint>;
  apply(events: readonly RecordedEvent[], checkpoint: bigint): Promise<void>;
  reset(): Promise<void>;
  /**
   * Whether `apply` would change anything for this event (optional). When a model says so, the projector does
   * not call `apply` for a page of events it handles none of: it keeps the position in memory and writes it with
   * the next page that matters, or once CHECKPOINT_LAG positions have gathered, or at stop() (LazyCheckpoint).
   * Must be true for every event apply acts on; a restart then only re-reads some events the model ignores.
   */
  handles?(event: RecordedEvent): boolean;
}

/**
 * Feeds a read model from the store's global order, from the model's own checkpoint.
 *
 * `catchUp()` brings the model up to the store's head and is single-flight: concurrent callers share one run.
 * Query handlers call it first, which gives read-your-writes without coupling the write path to the projection.
 * `start()` runs it in the background, woken by the store's append notifications.
 */
export class Projector {
  private readonly loop: DrainLoop;
  /** The model's checkpoint; written by apply itself, or by an apply of no events for a page passed over. */
  private readonly cursor: LazyCheckpoint;

  constructor(
    private readonly store: EventStore,
    private readonly model: ProjectionTarget,
    private readonly logger?: ProjectorLogger,
    private readonly batchSize = 1000,
    private readonly name = 'registry',
    /**
     * How long the background loop lets appends gather after a wake-up before it projects them: fewer, larger
     * projection transactions under load. Queries are not delayed by it: they call catchUp() themselves.
     */
    private readonly coalesceMs = 20,
  ) {
    this.cursor = new LazyCheckpoint({ get: () => model.checkpoint(), set: (_name, position) => model.apply([], position) }, name);
    this.loop = new DrainLoop({
      drain: () => this.drain(),
      wait: async () => this.store.waitForAppend(await this.cursor.position(), 1000),
      onError: (error) => this.logger?.error({ err: error }, `${this.name} projection failed; retrying`),
      retryMs: 500,
      coalesceMs: this.coalesceMs,
    });
  }

  catchUp(): Promise<void> {
    return this.loop.catchUp();
  }

  /** Drop the model and replay every event into it. */
  async rebuild(): Promise<void> {
    await this.loop.idle();
    this.cursor.forget();
    await this.model.reset();
    await this.catchUp();
  }

  start(): void {
    this.loop.start();
  }

  /** Ends after the drain in hand, then writes a position kept in memory (see ProjectionTarget.handles). */
  async stop(): Promise<void> {
    await this.loop.stop();
    try {
      await this.cursor.flush();
    } catch (error) {
      // Harmless: the next start reads again, from the written checkpoint, events the model ignores.
      this.logger?.warn({ err: error }, `${this.name} projection: could not write its checkpoint at stop`);
    }
  }

  private async drain(): Promise<void> {
    let checkpoint = await this.cursor.position();
    for (;;) {
      const events = await this.store.readAll({ after: checkpoint, maxCount: this.batchSize });
      if (events.length === 0) return;
      checkpoint = events[events.length - 1]!.globalPosition;
      if (this.mayPass(events)) {
        await this.cursor.pass(checkpoint);
        continue;
      }
      await this.model.apply(events, checkpoint);
      this.cursor.stored(checkpoint);
    }
  }

  /** True when the model says it handles none of `events`. */
  private mayPass(events: readonly RecordedEvent[]): boolean {
    const model = this.model;
    if (model.handles === undefined) return false;
    return !events.some((e) => model.handles!(e));
  }
}
