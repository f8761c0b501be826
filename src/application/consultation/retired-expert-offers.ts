import { loggableError, loggableId } from '../../domain/monitoring/cpr-like';
import { readCoveredPage } from '../covered-page';
import type { DirectoryReadModel } from '../directory/directory-read-model';
import { BackgroundDrain } from '../drain-loop';
import { uuidV5 } from '../ids';
import type { CheckpointStore } from '../ports/downlink-outbox';
import type { EventStore, RecordedEvent } from '../ports/event-store';
import type { ProjectorLogger } from '../projector';
import type { ConsultationReadModel, OpenOfferRow } from './consultation-read-model';
import type { ConsultationService } from './consultation-service';

/**
 * Takes open offers back from experts who retired: the process manager between the directory and the
 * consultations. Without it, an offer to an expert who left waited out its whole deadline (up to 30 days), and the
 * retired expert's system kept reading the case's attachments meanwhile.
 *
 *   new RetiredExpertOffers({ store, checkpoints, consultations, projector, directory, directoryProjector, service })
 *     .start() / stop() / catchUp()
 *
 * It follows the store from its own checkpoint (`checkpoints`, name 'consultation-retired-expert-offers'), reading
 * two event types only:
 * - ExpertRetired: every consultation with an open offer to that expert now (the consultation read model, caught
 *   up past the event) gets WithdrawOffer {reason 'expert_retired'}: the next active candidate is offered the case,
 *   or it is unassigned when none is left (ConsultationService.withdrawOffer).
 * - ConsultationOffered: an offer made to an expert the directory (caught up past the event) has retired gets the
 *   same. This closes the race of a retirement with a decline or an expiry that picked the expert as the next
 *   candidate just before the retirement was recorded: whichever of the two events comes later in the store's order
 *   finds the other one already there.
 *
 * Idempotent, so it may replay and several hub processes may run it at once (as the Deadlines runner): the command
 * id of a withdrawal is deterministic (withdrawalCommandId: one per consultation and offer), so two processes
 * write the same event ids and the second stores nothing; and the decider records nothing for an offer that is no
 * longer open. The checkpoint only saves work: a process that sets it back (a slower one on a shared store) makes
 * the next drain see events again, to no effect.
 *
 * One bad consultation does not stop it: the event's other withdrawals go on; a withdrawal that failed is tried
 * again (the drain fails after the event and retries from the checkpoint after a pause, so a store outage loses
 * nothing), at most MAX_ATTEMPTS times per withdrawal, then logged at error level and left: that offer then runs
 * out at its deadline, as before. Log lines carry ids only (consultation, correlation,
 * offer index, expert), never patient data.
 */
export const RETIRED_EXPERT_OFFERS_CHECKPOINT = 'consultation-retired-expert-offers';
export const MAX_ATTEMPTS = 5;
/** Positions passed without events of its types before the checkpoint is stored anyway. */
export const CHECKPOINT_EVERY = 10_000n;
const TYPES: ReadonlySet<string> = new Set(['ExpertRetired', 'ConsultationOffered']);

export const withdrawalCommandId = (consultationId: string, offerIndex: number): string => uuidV5(`consultation-withdraw/${consultationId}/${offerIndex}`);

export type RetiredExpertOffersDependencies = Readonly<{
  store: EventStore;
  checkpoints: CheckpointStore;
  consultations: Pick<ConsultationReadModel, 'openOffersTo'>;
  /** The consultation projector: caught up before the read model is asked. */
  projector: { catchUp(): Promise<void> };
  directory: Pick<DirectoryReadModel, 'getExpert'>;
  directoryProjector: { catchUp(): Promise<void> };
  service: Pick<ConsultationService, 'withdrawOffer'>;
  name?: string;
  batchSize?: number;
  /** Pause before a drain that failed is tried again (default 1000 ms). */
  retryMs?: number;
  logger?: ProjectorLogger;
}>;

type Withdrawal = OpenOfferRow & Readonly<{ expertId: string }>;

export class RetiredExpertOffers extends BackgroundDrain {
  private readonly name: string;
  /** Failed tries per withdrawal (command id); in memory: a restart gives each its tries again. */
  private readonly attempts = new Map<string, number>();
  /** The position handled through, and the last one stored as the checkpoint (see position()). */
  private at: bigint | undefined;
  private stored: bigint | undefined;

  constructor(private readonly deps: RetiredExpertOffersDependencies) {
    super(deps.logger, { failed: 'withdrawing offers to retired experts failed; retrying from the checkpoint', recovered: 'withdrawing offers to retired experts works again' }, { retryMs: deps.retryMs ?? 1000 });
    this.name = deps.name ?? RETIRED_EXPERT_OFFERS_CHECKPOINT;
  }

  protected async waitForWork(): Promise<unknown> {
    return this.deps.store.waitForAppend(await this.position(), 1000);
  }

  /**
   * Where the reactor is: kept in memory, read from the store once. The stored checkpoint follows it only when a
   * page held events of its types, or every CHECKPOINT_EVERY positions: it woke at every commit, and a checkpoint
   * written at each wake was a write transaction of its own per commit on the hub's store (on SQLite one more job
   * in the writer's queue, splitting the uploads' batches: HTTP ingest lost ~20 %). The checkpoint only saves work:
   * after a restart the reactor reads again from the stored one, to no effect.
   */
  private async position(): Promise<bigint> {
    if (this.at === undefined) {
      this.at = await this.deps.checkpoints.get(this.name);
      this.stored = this.at;
    }
    return this.at;
  }

  private async advance(to: bigint, force: boolean): Promise<void> {
    this.at = to;
    if (!force && to - (this.stored ?? 0n) < CHECKPOINT_EVERY) return;
    await this.deps.checkpoints.set(this.name, to);
    this.stored = to;
  }

  protected async drain(): Promise<boolean> {
    let checkpoint = await this.position();
    for (;;) {
      const { events, through } = await readCoveredPage(this.deps.store, checkpoint, this.deps.batchSize ?? 500, TYPES);
      if (through <= checkpoint) return true;
      if (events.length > 0) {
        // Both read models past every event of the page (they were appended before these calls).
        await this.deps.directoryProjector.catchUp();
        await this.deps.projector.catchUp();
      }
      for (const event of events) {
        const failed = await this.handle(event);
        if (failed > 0) {
          // Keep what is done; this event is read again after the pause.
          if (event.globalPosition - 1n > checkpoint) await this.advance(event.globalPosition - 1n, true);
          throw new Error(`${failed} withdrawal(s) of an offer to a retired expert failed; tried again from the checkpoint (each at most ${MAX_ATTEMPTS} times)`);
        }
      }
      checkpoint = through;
      await this.advance(checkpoint, events.length > 0 || this.stopRequested);
      if (this.stopRequested) return true;
    }
  }

  /** The withdrawals one event calls for, each tried; returns how many failed and are to be tried again. */
  private async handle(event: RecordedEvent): Promise<number> {
    // The read models could not be asked: the drain fails and the event is read again after the pause.
    const withdrawals = await this.withdrawalsFor(event);
    let failed = 0;
    for (const w of withdrawals) {
      const commandId = withdrawalCommandId(w.consultationId, w.offerIndex);
      // For the lines: a legacy consultation id may hold a CPR number, a correlation id one glued into other digits;
      // a store's error names the stream, consultation-<id> (loggableError).
      const ids = { consultationId: loggableId(w.consultationId), correlationId: loggableId(w.correlationId), offerIndex: w.offerIndex, expertId: w.expertId };
      if ((this.attempts.get(commandId) ?? 0) >= MAX_ATTEMPTS) continue; // given up on already (logged then)
      try {
        const { changed } = await this.deps.service.withdrawOffer(w.consultationId, { expertId: w.expertId, offerIndex: w.offerIndex, reason: 'expert_retired' }, { commandId });
        this.attempts.delete(commandId);
        if (changed) this.deps.logger?.info?.(ids, 'offer withdrawn: its expert retired; the case moved on');
      } catch (error) {
        const attempts = (this.attempts.get(commandId) ?? 0) + 1;
        this.attempts.set(commandId, attempts);
        if (attempts < MAX_ATTEMPTS) {
          this.deps.logger?.warn({ err: loggableError(error), ...ids, attempts }, 'withdrawing the offer to a retired expert failed; the others go on, and it is tried again');
          failed++;
        } else {
          this.deps.logger?.error({ err: loggableError(error), ...ids, attempts }, 'gave up withdrawing the offer to a retired expert; it stays open until its deadline');
        }
      }
    }
    return failed;
  }

  private async withdrawalsFor(event: RecordedEvent): Promise<readonly Withdrawal[]> {
    const expertId = event.data.expertId;
    if (typeof expertId !== 'string') return [];
    if (event.type === 'ExpertRetired') {
      return (await this.deps.consultations.openOffersTo(expertId)).map((row) => ({ ...row, expertId }));
    }
    // ConsultationOffered: only when the expert had retired (the decider ignores an offer no longer open).
    const { consultationId, offerIndex } = event.data;
    if (typeof consultationId !== 'string' || typeof offerIndex !== 'number') return [];
    if ((await this.deps.directory.getExpert(expertId))?.status !== 'retired') return [];
    const correlationId = typeof event.metadata?.correlationId === 'string' ? event.metadata.correlationId : '';
    return [{ consultationId, correlationId, offerIndex, expertId }];
  }
}
