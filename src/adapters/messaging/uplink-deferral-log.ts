import { RepeatedFailureLog, type FailureLogger } from '../../application/repeated-failure-log';
import { UnavailableError } from '../../domain/shared/errors';

/**
 * The log of uplink messages handed back uncounted while the hub cannot store (README "When the hub cannot store"):
 * one warning per 10 s with the count and the code (`storage_unavailable`, `audit_unavailable`), and one line when
 * messages are handled again.
 *
 * A deferral is reported when its message is handed back, after its pause (1 s, doubling to 30 s), so the messages
 * whose handling failed during the outage come back after it has ended, mixed with the first accepted ones. Each
 * such pair used to be a new outage and its end: after a 45 s outage of one hub's database, an outside review saw an
 * error line every 150-300 ms for seconds, each followed by "uplink messages are handled again". A deferral whose
 * handling failed (its pause ago) before messages were handled again belongs to the outage already logged: it is
 * counted (rts_uplink_deferred_total), not logged again.
 */
export class UplinkDeferralLog {
  private readonly log: RepeatedFailureLog;
  private readonly now: () => number;
  private deferring = false;
  private handledAgainAt = Number.NEGATIVE_INFINITY;

  constructor(logger: FailureLogger | undefined, options: Readonly<{ now?: () => number }> = {}) {
    this.now = options.now ?? Date.now;
    this.log = new RepeatedFailureLog(
      logger,
      { failed: 'uplink messages handed back uncounted: the hub cannot store now; they come again', recovered: 'uplink messages are handled again' },
      { now: this.now },
    );
  }

  /** A message handed back uncounted after `pauseMs`, for `reason` ("transient failure: storage_unavailable"). */
  deferred(reason: string, pauseMs: number): void {
    if (this.now() - pauseMs < this.handledAgainAt) return;
    this.deferring = true;
    this.log.failed(new UnavailableError(codeOf(reason), reason));
  }

  /** A message accepted. */
  accepted(): void {
    if (!this.deferring) return;
    this.deferring = false;
    this.handledAgainAt = this.now();
    this.log.succeeded();
  }
}

/**
 * "transient failure: storage_unavailable" -> storage_unavailable; "hub_stopping: not handled, ..." -> hub_stopping
 * (its leading code, as the metrics' reasonCode reads it); another wording -> 'unavailable'.
 */
const codeOf = (reason: string): string => {
  const text = reason.trim();
  return /(?:^|: )([a-z][a-z0-9_]{0,40})$/.exec(text)?.[1] ?? /^([a-z][a-z0-9_]{0,40}):/.exec(text)?.[1] ?? 'unavailable';
};
