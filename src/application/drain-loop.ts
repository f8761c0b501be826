import { RepeatedFailureLog, type FailureLogger } from './repeated-failure-log';
import { WakeUp } from './wake-up';

/**
 * The run loop every background subscriber of the event store shares (the projectors, the downlink publishers).
 *
 *   const loop = new DrainLoop({
 *     drain: (keepGoing) => this.drain(keepGoing),                 // read from the checkpoint, handle, advance
 *     wait: async () => store.waitForAppend(await checkpoint(), 1000),
 *     onError: (err) => logger.error({ err }, 'x failed; retrying'),
 *   });
 *   loop.catchUp();  // resolves once everything appended before the call is handled (queries call this first)
 *   loop.start();    // drain, wait for an append past the checkpoint (or 1 s), let more gather, drain again
 *   await loop.stop(); // ends after the drain in hand
 *
 * One drain runs at a time. `drain(keepGoing)` reads pages from its checkpoint and resolves `true` when a read
 * found nothing new (it is at the head), `false` when it stopped before that. A drain of the background loop may
 * stop after a page shorter than a full one while `keepGoing()` is false: under a steady stream of appends it
 * would otherwise never reach an empty page, and would handle (and checkpoint) each commit's few events on its own
 * instead of letting them gather for `coalesceMs`. While a caller of `catchUp()` waits, `keepGoing()` is true, so
 * the drain reads on to the head.
 *
 * catchUp's guarantee: it resolves after a drain that began after the call ended at the head; joining a drain that
 * began before the call is not enough (it may have read its last page before the caller's own append), so such a
 * caller runs one more drain (an empty read, when nothing else came).
 *
 * A failed drain or wait is reported to `onError` and retried after `retryMs`; the subscriber's checkpoint makes
 * the retry start where the failure left off. The first drain and wait that succeed after failures are reported to
 * `onRecovered` (RepeatedFailureLog keeps the log of a long outage short). A failure of the drain a stop() ended is
 * not reported: there is no retry.
 */
export type DrainLoopOptions = Readonly<{
  drain: (keepGoing: () => boolean) => Promise<boolean>;
  wait: () => Promise<unknown>;
  onError: (error: unknown) => void;
  onRecovered?: () => void;
  /** Pause before retrying after an error (default 1000 ms). */
  retryMs?: number;
  /** After a wake-up, let appends gather this long before draining (default 0). */
  coalesceMs?: number;
}>;

export class DrainLoop {
  private running: Promise<void> | null = null;
  private loop: Promise<void> | null = null;
  private stopped = true;
  /** catchUp() calls so far, and the highest of them a drain has served (it began after them and reached the head). */
  private asked = 0;
  private served = 0;
  /**
   * Ends the loop's current wait or pause at stop(), so a stop does not sit out a wait of up to a second. A WakeUp,
   * not a race with one stop promise: that kept ~312 bytes per pass for as long as the loop ran (see wake-up.ts).
   */
  private stopping: WakeUp | null = null;

  constructor(private readonly options: DrainLoopOptions) {}

  get isStopped(): boolean {
    return this.stopped;
  }

  async catchUp(): Promise<void> {
    const ticket = ++this.asked;
    while (this.served < ticket) await this.drainOnce();
  }

  /** Resolves when no drain is in progress (whatever its outcome). */
  async idle(): Promise<void> {
    await this.running?.catch(() => undefined);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const { wait, onError, onRecovered, retryMs = 1000, coalesceMs = 0 } = this.options;
    const stopping = (this.stopping = new WakeUp());
    const untilStop = (p: Promise<unknown>) => stopping.race(p);
    this.loop = (async () => {
      let failing = false;
      while (!this.stopped) {
        try {
          await this.drainOnce();
          await untilStop(wait());
          if (failing) {
            failing = false;
            onRecovered?.();
          }
          if (!this.stopped && coalesceMs > 0) await pause(coalesceMs, stopping);
        } catch (error) {
          if (this.stopped) break;
          failing = true;
          onError(error);
          await pause(retryMs, stopping);
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping?.fire();
    this.stopping = null;
    await this.loop;
    await this.idle();
  }

  /** The drain in progress, or a new one. */
  private drainOnce(): Promise<void> {
    this.running ??= (async () => {
      const before = this.asked; // the callers this drain began after
      const atHead = await this.options.drain(() => this.served < this.asked);
      if (atHead) this.served = Math.max(this.served, before);
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }
}

/**
 * Waits `ms`, or until `stopping` fires (at once when it has), and then clears its timer: a stopped loop left its
 * pause's timer behind, which kept the process alive after everything was closed (an embedder's `close()`, a test
 * worker) until it ran out. The consultation Deadlines sleep between polls with it too.
 */
export const pause = async (ms: number, stopping: WakeUp): Promise<void> => {
  let timer: NodeJS.Timeout | undefined;
  try {
    await stopping.race(new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))));
  } finally {
    clearTimeout(timer);
  }
};

/**
 * A background subscriber run by a DrainLoop: the downlink publishers and the held-downlink releaser. It gives
 * start / stop / catchUp, `stopRequested` for the drain in hand to end at its next step, and a failure log kept
 * short (RepeatedFailureLog). A subclass gives the drain and what it waits for.
 */
export abstract class BackgroundDrain {
  /** Set by stop(): the drain in hand ends at its next check; cleared by start(). */
  protected stopRequested = false;
  private readonly loop: DrainLoop;

  protected constructor(logger: FailureLogger | undefined, messages: Readonly<{ failed: string; recovered: string }>, options: Pick<DrainLoopOptions, 'coalesceMs' | 'retryMs'> = {}) {
    const failures = new RepeatedFailureLog(logger, messages);
    this.loop = new DrainLoop({
      drain: () => this.drain(),
      wait: () => this.waitForWork(),
      onError: (error) => failures.failed(error),
      onRecovered: () => failures.succeeded(),
      ...options,
    });
  }

  /** To the head, or until stop() asks it to end. */
  protected abstract drain(): Promise<boolean>;
  /** Until there may be work (an append past what was handled), or a timeout. */
  protected abstract waitForWork(): Promise<unknown>;

  catchUp(): Promise<void> {
    return this.loop.catchUp();
  }

  start(): void {
    if (!this.loop.isStopped) return;
    this.stopRequested = false;
    this.loop.start();
  }

  async stop(): Promise<void> {
    this.stopRequested = true;
    await this.loop.stop();
  }
}
