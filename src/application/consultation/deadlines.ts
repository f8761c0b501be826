import { DateTime } from 'luxon';
import { loggableError, loggableId } from '../../domain/monitoring/cpr-like';
import { pause } from '../drain-loop';
import { uuidV5 } from '../ids';
import type { ProjectorLogger } from '../projector';
import { RepeatedFailureLog } from '../repeated-failure-log';
import { WakeUp } from '../wake-up';
import type { ConsultationReadModel, DueTimerRow } from './consultation-read-model';
import type { ConsultationService } from './consultation-service';

/**
 * Timers of the consultations: offers that expire, reports that are re-sent while unacknowledged.
 *
 *   expireDue(now, rows) -> TimerCommand[]            PURE: which commands the due timers call for
 *   new Deadlines({ consultations, projector, service, clock }).runOnce() / start() / stop()
 *
 * Each timer's command id is deterministic: UUIDv5 of ('consultation-timer', id, kind, offerIndex | attempt).
 * Two hub processes that fire the same timer at once write the same event ids: the second is a no-op (or it
 * re-decides on the new state after a version conflict, where the decider finds the timer stale and records
 * nothing). The decider also ignores timers that are not yet due or no longer open, so a runner with a read
 * model behind the store is harmless.
 */
export type TimerCommand =
  | Readonly<{ kind: 'expire'; consultationId: string; offerIndex: number; commandId: string }>
  | Readonly<{ kind: 'resend'; consultationId: string; attempt: number; commandId: string }>;

export const timerCommandId = (consultationId: string, kind: 'offer' | 'resend', n: number): string => uuidV5(`consultation-timer/${consultationId}/${kind}/${n}`);

export const expireDue = (now: string, rows: readonly DueTimerRow[]): TimerCommand[] => {
  const at = DateTime.fromISO(now).toMillis();
  return rows
    .filter((r) => DateTime.fromISO(r.dueAt).toMillis() <= at)
    .map((r): TimerCommand =>
      r.kind === 'offer'
        ? { kind: 'expire', consultationId: r.consultationId, offerIndex: r.offerIndex, commandId: timerCommandId(r.consultationId, 'offer', r.offerIndex) }
        : { kind: 'resend', consultationId: r.consultationId, attempt: r.attempt, commandId: timerCommandId(r.consultationId, 'resend', r.attempt) },
    );
};

export type DeadlinesDependencies = Readonly<{
  consultations: Pick<ConsultationReadModel, 'dueTimers'>;
  projector: { catchUp(): Promise<void> };
  service: Pick<ConsultationService, 'expireOffer' | 'resendReport'>;
  clock: { now(): DateTime };
  /** Poll interval of start() (default 1000 ms). */
  intervalMs?: number;
  /** Timers handled per poll. */
  batchSize?: number;
  /**
   * After start(), offers whose deadline passed before the start (while the hub was down) are left open this long
   * (default START_GRACE_MS): the uplink's backlog may hold an accept sent in time, which the decider takes while
   * the offer is open. Offers due after the start expire on time.
   */
  startGraceMs?: number;
  /**
   * Milliseconds on a monotonic clock (default performance.now()): the start grace is measured on it. On the wall
   * clock, an NTP step just after a start (a VM's boot) stretched the grace by a step back, or ended it at once.
   */
  monotonicMs?: () => number;
  logger?: ProjectorLogger;
}>;

export const START_GRACE_MS = 30_000;

export class Deadlines {
  private stopped = true;
  /**
   * When start() was called, while the start grace lasts (null without one): `wall` (ms) tells the offers that ran out
   * before the start, `monotonic` (ms) how long the grace has lasted.
   */
  private startedAt: Readonly<{ wall: number; monotonic: number }> | null = null;
  private loop: Promise<void> | null = null;
  /**
   * Fired by stop(): ends the loop's sleep, or the next one at once when stop() came during a poll (a wake-up callback
   * set only while sleeping missed that stop, and the loop slept a whole interval more before stop() returned).
   */
  private stopping: WakeUp | null = null;

  constructor(private readonly deps: DeadlinesDependencies) {}

  private monotonicMs(): number {
    return this.deps.monotonicMs?.() ?? performance.now();
  }

  /** Fire every timer due now; returns how many commands recorded events. */
  async runOnce(): Promise<number> {
    await this.deps.projector.catchUp();
    const now = this.deps.clock.now().toUTC().toISO()!;
    const rows = await this.deps.consultations.dueTimers(now, this.deps.batchSize ?? 500);
    const correlationOf = new Map(rows.map((r) => [r.consultationId, r.correlationId]));
    const commands = expireDue(now, rows).filter((c) => c.kind !== 'expire' || !this.inStartGrace(rows, c));
    let changed = 0;
    for (const c of commands) {
      try {
        const result =
          c.kind === 'expire'
            ? await this.deps.service.expireOffer(c.consultationId, c.offerIndex, { commandId: c.commandId })
            : await this.deps.service.resendReport(c.consultationId, c.attempt, { commandId: c.commandId });
        if (result.changed) changed++;
        // The last resend went without an acknowledgement: the hub sends the report no more, and nobody else would
        // learn of it (the applicant may never have seen the report). One line for the operators, with no patient data.
        const report = result.consultation.report;
        if (c.kind === 'resend' && result.changed && report !== null && report.nextResendAt === null && report.acknowledgedAt === null) {
          this.deps.logger?.warn(
            { consultationId: loggableId(c.consultationId), correlationId: loggableId(correlationOf.get(c.consultationId)), resends: report.resends },
            'consultation report not acknowledged after its last resend: it is not sent again; ask the applicant system whether it has the report',
          );
        }
      } catch (error) {
        // One failing timer must not hold up the others; it is due again on the next poll. The ids through loggableId:
        // a legacy consultation's id may hold a CPR number (its timers still run: legacy-id.ts), and so may a
        // correlation id, glued into other digits; the error through loggableError, as a store's names the stream.
        this.deps.logger?.warn({ err: loggableError(error), kind: c.kind, consultationId: loggableId(c.consultationId), correlationId: loggableId(correlationOf.get(c.consultationId)) }, 'consultation timer failed; retrying on the next poll');
      }
    }
    return changed;
  }

  private inStartGrace(rows: readonly DueTimerRow[], c: Extract<TimerCommand, { kind: 'expire' }>): boolean {
    if (this.startedAt === null) return false;
    if (this.monotonicMs() - this.startedAt.monotonic >= (this.deps.startGraceMs ?? START_GRACE_MS)) {
      this.startedAt = null;
      return false;
    }
    const row = rows.find((r) => r.kind === 'offer' && r.consultationId === c.consultationId && r.offerIndex === c.offerIndex);
    return row !== undefined && DateTime.fromISO(row.dueAt).toMillis() < this.startedAt.wall;
  }

  /**
   * Polls every `intervalMs` (after each poll ends) until stop(). The DrainLoop of the subscribers is not used: its
   * wait has no stop signal of its own (its timer would outlive a stop), and it reports a recovery only after the
   * wait that follows; this loop takes the same WakeUp and pause instead.
   */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.startedAt = { wall: this.deps.clock.now().toMillis(), monotonic: this.monotonicMs() };
    // A store that cannot be reached fails every poll alike: one line per 10 s, and one when it works again.
    const failures = new RepeatedFailureLog(this.deps.logger, { failed: 'consultation deadlines failed; retrying', recovered: 'consultation deadlines work again' });
    // This loop's own: a loop a stop() ended keeps to its end even when start() is called again before it got there.
    const stopping = (this.stopping = new WakeUp());
    this.loop = (async () => {
      while (!stopping.isFired) {
        try {
          await this.runOnce();
          failures.succeeded();
        } catch (error) {
          if (!stopping.isFired) failures.failed(error);
        }
        await pause(this.deps.intervalMs ?? 1000, stopping);
      }
    })();
  }

  /** Returns once the poll in hand (if any) has ended; no sleep is waited out. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping?.fire();
    this.stopping = null;
    await this.loop;
  }
}
