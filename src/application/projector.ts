import { DrainLoop } from './drain-loop';
import type { EventStore, RecordedEvent } from './ports/event-store';

export type ProjectorLogger = { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };

/** What a projector needs of a read model: its checkpoint, an atomic apply-and-advance, and a reset. */
export interface ProjectionTarget {
  checkpoint(): Promise<bigint>;
  apply(events: readonly RecordedEvent[], checkpoint: bigint): Promise<void>;
  reset(): Promise<void>;
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
    this.loop = new DrainLoop({
      drain: () => this.drain(),
      wait: async () => this.store.waitForAppend(await this.model.checkpoint(), 1000),
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
    await this.model.reset();
    await this.catchUp();
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  private async drain(): Promise<void> {
    let checkpoint = await this.model.checkpoint();
    for (;;) {
      const events = await this.store.readAll({ after: checkpoint, maxCount: this.batchSize });
      if (events.length === 0) return;
      checkpoint = events[events.length - 1]!.globalPosition;
      await this.model.apply(events, checkpoint);
    }
  }
}
