import { readCoveredPage } from './covered-page';
import { DrainLoop } from './drain-loop';
import type { EventStore, RecordedEvent } from './ports/event-store';
import { RepeatedFailureLog, type FailureLogger } from './repeated-failure-log';

export type ProjectorLogger = FailureLogger;

/**
 * Thrown by a model's `apply` when the page it was given was read after a position the model is no longer at (its
 * checkpoint lies before the page's `from`: a rebuild, in this process or another one on the same store, reset it
 * meanwhile). The projector reads again from the model's checkpoint. Applied, the page's few rows went in and the
 * checkpoint moved to the head over everything the reset had emptied: a registry rebuilt during uploads on
 * PostgreSQL held 32 rows of 2,534 documents, for every hub on the schema, until the next rebuild.
 */
export class ProjectionBehind extends Error {
  constructor(stored: bigint, from: bigint) {
    super(`the model's checkpoint ${stored} lies before the page's start ${from}: read again from it`);
    this.name = 'ProjectionBehind';
  }
}

/**
 * A model's replacement, built beside it from the first event while the model goes on serving its reads and being
 * fed, then swapped in for it (Projector.rebuild). A model offers one where a reset would be seen by readers it
 * cannot hold (on PostgreSQL, the other hub processes on the schema would read an emptied registry until the replay
 * passed each of its documents), or would hold them too long (on SQLite, the whole replay: minutes per million
 * events).
 */
export interface Replacement<T> {
  /** The replacement, fed as the model is: from its own checkpoint. */
  readonly target: T;
  /**
   * Swaps the replacement in for the model when it holds all the model holds (its checkpoint at or past the
   * model's), and says whether it did. The model may have moved on while the replacement was fed: the caller
   * feeds it further and asks again. `force`: swap in even so; the model's checkpoint then goes back to the
   * replacement's, and its projectors apply the rest again.
   */
  swapIn(force: boolean): Promise<boolean>;
  /** Ends the build, swapped in or not; a replacement not swapped in is dropped. */
  close(): Promise<void>;
}

/** Attempts at swapping a replacement in (Replacement.swapIn) before it is forced in. */
const SWAP_ATTEMPTS = 20;
/**
 * Attempts in all before the rebuild gives up, the model as it was: a swap may also be refused while something
 * holds the model's tables (a swap waits for them only so long: PostgreSQL's behind a pg_dump), forced or not.
 */
const SWAP_GIVE_UP = 200;

/** What a projector needs of a read model: its checkpoint, an atomic apply-and-advance, and a reset. */
export interface ProjectionTarget {
  checkpoint(): Promise<bigint>;
  /**
   * `from`: the checkpoint the page was read after. A model that others may reset meanwhile (a registry: rebuilds)
   * throws ProjectionBehind when its checkpoint lies before it, in the same transaction as the apply.
   */
  apply(events: readonly RecordedEvent[], checkpoint: bigint, from?: bigint): Promise<void>;
  reset(): Promise<void>;
  /**
   * The only event types the model uses, when it says so: the projector then reads only those (the store skips
   * the rest), and `apply` gets them with a checkpoint that may lie past the last of them, up to the head the
   * read covered, even with no events at all.
   */
  readonly eventTypes?: ReadonlySet<string>;
  /** When the model can be rebuilt beside itself (see Replacement); rebuild() then does so instead of a reset. */
  rebuildBeside?(): Promise<Replacement<FedModel>>;
}

/** What a projector feeds: a model, or a model's replacement. */
export type FedModel = Pick<ProjectionTarget, 'checkpoint' | 'apply' | 'eventTypes'>;

/**
 * Feeds a read model from the store's global order, from the model's own checkpoint.
 *
 * `catchUp()` brings the model up to everything appended before the call; concurrent callers share the drains.
 * Query handlers call it first, which gives read-your-writes without coupling the write path to the projection.
 * `start()` projects in the background, woken by the store's append notifications, letting appends gather for
 * `coalesceMs` between drains (see DrainLoop).
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
    // A store that cannot be reached fails every retry alike: one line per 10 s, and one when it works again.
    const failures = new RepeatedFailureLog(this.logger, { failed: `${this.name} projection failed; retrying`, recovered: `${this.name} projection works again` });
    this.loop = new DrainLoop({
      drain: (keepGoing) => this.drain(keepGoing),
      wait: async () => this.store.waitForAppend(await this.model.checkpoint(), 1000),
      onError: (error) => failures.failed(error),
      onRecovered: () => failures.succeeded(),
      retryMs: 500,
      coalesceMs: this.coalesceMs,
    });
  }

  catchUp(): Promise<void> {
    return this.loop.catchUp();
  }

  /** Reads of the model in flight (see `read`), and what a rebuild waiting for them to end is told by. */
  private readers = 0;
  private noReaders: (() => void) | null = null;
  private rebuilding: Promise<void> | null = null;
  /** The rebuilds beside the model (rebuildBeside), one after the other. */
  private replacing: Promise<void> = Promise.resolve();

  /**
   * `query` on the model caught up to everything appended before the call, never on a model a rebuild has emptied
   * and not filled again: a rebuild waits for the reads in flight, and reads that come meanwhile wait for it. (A
   * query that caught up just before a rebuild's reset read an empty model: an existing document was
   * document_not_found, a patient with readings unknown_patient.) `query` must not call `read` itself.
   */
  async read<T>(query: () => Promise<T>): Promise<T> {
    while (this.rebuilding) await this.rebuilding.catch(() => undefined);
    this.readers++;
    try {
      await this.loop.catchUp();
      return await query();
    } finally {
      this.readers--;
      if (this.readers === 0 && this.noReaders) {
        const wake = this.noReaders;
        this.noReaders = null;
        wake();
      }
    }
  }

  /**
   * Replays every event into the model from the first. A model that can be rebuilt beside itself (rebuildBeside)
   * is: reads go on meanwhile, on the model as it was, and the replacement is swapped in once it has caught up.
   * Otherwise the model is reset and replayed into, and reads (`read`) are held meanwhile.
   */
  async rebuild(): Promise<void> {
    const beside = this.model.rebuildBeside?.bind(this.model);
    if (beside) {
      // One at a time: a second would drop the first's replacement under it.
      const run = this.replacing.catch(() => undefined).then(async () => this.replace(await beside()));
      this.replacing = run;
      return run;
    }
    while (this.rebuilding) await this.rebuilding.catch(() => undefined);
    const run = (async () => {
      while (this.readers > 0) await new Promise<void>((resolve) => (this.noReaders = resolve));
      await this.loop.idle();
      await this.model.reset();
      await this.loop.catchUp();
    })();
    this.rebuilding = run;
    try {
      await run;
    } finally {
      if (this.rebuilding === run) this.rebuilding = null;
    }
  }

  /**
   * Feeds the replacement to the head, then asks to swap it in; again while the model has moved on meanwhile (the
   * background loops of this and other processes keep feeding it), forced after SWAP_ATTEMPTS, given up after
   * SWAP_GIVE_UP.
   */
  private async replace(replacement: Replacement<FedModel>): Promise<void> {
    try {
      for (let attempt = 1; ; attempt++) {
        await this.drain(() => true, replacement.target);
        if (await replacement.swapIn(attempt >= SWAP_ATTEMPTS)) break;
        if (attempt >= SWAP_GIVE_UP) {
          throw new Error(`${this.name}: the rebuilt model could not be swapped in after ${attempt} tries (its tables held by a long transaction?); the model is as it was`);
        }
      }
    } finally {
      await replacement.close();
    }
    await this.loop.catchUp();
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /**
   * Pages from the checkpoint to the head. The background loop's drain stops after a short page unless a caller
   * waits (see DrainLoop): the next events then gather for `coalesceMs` and are applied, and checkpointed, together,
   * instead of one transaction per commit that happens to land while the drain runs.
   */
  private async drain(keepGoing: () => boolean, model: FedModel = this.model): Promise<boolean> {
    let checkpoint = await model.checkpoint();
    // The head as this drain begins: once past it, everything appended before the drain began is in, which is all
    // catchUp promises its callers. Reading on to an empty page never ended under a steady stream of appends when
    // each apply let more commit (a registry rebuild on SQLite during uploads: the rebuild, and every query held
    // behind it, waited for as long as uploads came).
    const head = await this.store.headPosition();
    for (;;) {
      const { events, full, through } = await readCoveredPage(this.store, checkpoint, this.batchSize, model.eventTypes);
      if (through <= checkpoint) return true;
      try {
        await model.apply(events, through, checkpoint);
      } catch (error) {
        if (!(error instanceof ProjectionBehind)) throw error;
        checkpoint = await model.checkpoint();
        continue;
      }
      checkpoint = through;
      if (checkpoint >= head) return true;
      if (!full && !keepGoing()) return false;
    }
  }
}
