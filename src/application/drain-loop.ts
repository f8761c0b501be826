/**
 * The run loop every background subscriber of the event store shares (the projectors, the downlink publishers).
 *
 *   const loop = new DrainLoop({
 *     drain: () => this.drain(),                                   // read from the checkpoint, handle, advance
 *     wait: async () => store.waitForAppend(await checkpoint(), 1000),
 *     onError: (err) => logger.error({ err }, 'x failed; retrying'),
 *   });
 *   loop.catchUp();  // one drain at a time: a caller during a drain joins it (queries call this first)
 *   loop.start();    // drain, wait for an append past the checkpoint (or 1 s), let more gather, drain again
 *   await loop.stop(); // ends after the drain in hand
 *
 * A failed drain or wait is reported to `onError` and retried after `retryMs`; the subscriber's checkpoint makes
 * the retry start where the failure left off.
 */
export type DrainLoopOptions = Readonly<{
  drain: () => Promise<void>;
  wait: () => Promise<unknown>;
  onError: (error: unknown) => void;
  /** Pause before retrying after an error (default 1000 ms). */
  retryMs?: number;
  /** After a wake-up, let appends gather this long before draining (default 0). */
  coalesceMs?: number;
}>;

export class DrainLoop {
  private running: Promise<void> | null = null;
  private loop: Promise<void> | null = null;
  private stopped = true;

  constructor(private readonly options: DrainLoopOptions) {}

  get isStopped(): boolean {
    return this.stopped;
  }

  catchUp(): Promise<void> {
    this.running ??= this.options.drain().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Resolves when no drain is in progress (whatever its outcome). */
  async idle(): Promise<void> {
    await this.running?.catch(() => undefined);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const { wait, onError, retryMs = 1000, coalesceMs = 0 } = this.options;
    this.loop = (async () => {
      while (!this.stopped) {
        try {
          await this.catchUp();
          await wait();
          if (!this.stopped && coalesceMs > 0) await sleep(coalesceMs);
        } catch (error) {
          onError(error);
          await sleep(retryMs);
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await this.idle();
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
