import type { EventStore } from '../ports/event-store';
import type { DirectoryReadModel } from './directory-read-model';

export type DirectoryLogger = { info?(obj: object, msg: string): void; warn(obj: object, msg: string): void; error(obj: object, msg: string): void };

/**
 * Feeds the directory read model from the store's global order, from the model's own checkpoint: the
 * registry's Projector (src/application/projector.ts), for a DirectoryReadModel.
 *
 * `catchUp()` brings the model to the store's head; single-flight (concurrent callers share one run). Queries
 * call it first (read-your-writes) and so does the downlink publisher before it plans from the model.
 * `start()` runs it in the background, woken by the store's append notifications; `stop()` ends that.
 */
export class DirectoryProjector {
  private running: Promise<void> | null = null;
  private stopped = true;
  private loop: Promise<void> | null = null;

  constructor(
    private readonly store: EventStore,
    private readonly model: DirectoryReadModel,
    private readonly logger?: DirectoryLogger,
    private readonly batchSize = 1000,
  ) {}

  catchUp(): Promise<void> {
    if (!this.running) {
      this.running = this.drain().finally(() => {
        this.running = null;
      });
    }
    return this.running;
  }

  /** Drop the model and replay every event into it. */
  async rebuild(): Promise<void> {
    await this.running;
    await this.model.reset();
    await this.catchUp();
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = (async () => {
      while (!this.stopped) {
        try {
          await this.catchUp();
          await this.store.waitForAppend(await this.model.checkpoint(), 1000);
        } catch (error) {
          this.logger?.error({ err: error }, 'directory projection failed; retrying');
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await this.running;
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
