import { SessionEndedError } from '../amqp/queue-consumer';
import type { UplinkConsumer } from './amqp-uplink-consumer';

/**
 * Keeps the hub's uplink consumer attached while the hub is connected to a broker.
 *
 * - The first attach waits for the first connection (no deadline). A broker that refuses the link (the hub's
 *   account may not read the queue) is asked again every `retryMs` (10 s) with a new consumer, so fixing its access
 *   map needs no restart; one log line per distinct reason.
 * - A link the broker ends after it was attached (a re-attach after a reconnect refused, the queue deleted, its
 *   session ended) is followed, `retryMs` later, by a new consumer, as at the start.
 * - And a check every `checkEveryMs` (5 s) compares what the hub should have with what it has: connected, but its
 *   link not attached for `missedChecks` (3) checks in a row, outside a wait after a refusal, is a link lost without
 *   any event (rhea says nothing to a link whose attach it lost, or whose session it removed), replaced as above.
 *   Events cover every case we know of; this covers the next one, and says so (`onLinkLost('missing')`).
 */
export type LinkLostReason = 'detached' | 'session_ended' | 'missing';

export const UPLINK_ATTACH_RETRY_MS = 10_000;
export const UPLINK_CHECK_EVERY_MS = 5_000;
export const UPLINK_MISSED_CHECKS = 3;

type Log = Readonly<{ info(obj: object, msg: string): void; error(obj: object, msg: string): void }>;

export type UplinkAttachmentDependencies = Readonly<{
  connection: Readonly<{ isConnected(): boolean; once(event: 'connected', listener: () => void): unknown }>;
  /** A new consumer; `onDetached` and `onAttached` are this class's. */
  newConsumer(hooks: { onDetached(error: Error): void; onAttached(): void }): UplinkConsumer;
  logger: Log;
  /** The fields of every log line here (broker, queues, prefetch). */
  describe(): object;
  /**
   * What its log lines call the consumer (default 'the uplink consumer'): the hub's second one, which reads back the
   * broker's dead letters of the uplink queue, is told apart, so a line about it is not taken for the uplink's.
   */
  name?: string;
  /** Told whether the hub consumes, whenever that may have changed (the rts_uplink_consuming gauge). */
  onConsuming?(consuming: boolean): void;
  /** A link found gone: by the broker's detach, its session's end, or only by the check (rts_uplink_link_lost_total). */
  onLinkLost?(reason: LinkLostReason): void;
  retryMs?: number;
  /** 0: no timer (tests call check() themselves). */
  checkEveryMs?: number;
  missedChecks?: number;
}>;

export class UplinkAttachment {
  private consumer: UplinkConsumer;
  private stopped = false;
  /**
   * Attach loops running (the first, or after a lost link): a consumer waits for the broker's answer, or a pause. A
   * count, not a flag: a link ended at once after its attach starts the next loop before the first has returned.
   */
  private loops = 0;
  private pausing = false;
  private missed = 0;
  private wakeRetry: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly retryMs: number;
  private readonly name: string;
  private readonly missedChecks: number;

  constructor(private readonly deps: UplinkAttachmentDependencies) {
    this.retryMs = deps.retryMs ?? UPLINK_ATTACH_RETRY_MS;
    this.name = deps.name ?? 'the uplink consumer';
    this.missedChecks = deps.missedChecks ?? UPLINK_MISSED_CHECKS;
    this.consumer = this.make();
  }

  /** Resolves true once the consumer is first attached, false if stopped before. */
  async start(): Promise<boolean> {
    const every = this.deps.checkEveryMs ?? UPLINK_CHECK_EVERY_MS;
    if (every > 0) {
      this.timer = setInterval(() => this.check(), every);
      this.timer.unref?.();
    }
    this.show();
    // Its receiver is opened only once connected: with discovery and no broker announced yet there is no socket.
    await new Promise<void>((resolve) => (this.deps.connection.isConnected() ? resolve() : this.deps.connection.once('connected', () => resolve())));
    if (this.stopped) return false;
    return this.attachUntilDone();
  }

  /** For /health: connected, and the link attached now. */
  consuming(): boolean {
    return !this.stopped && this.deps.connection.isConnected() && this.consumer.attached();
  }

  /** Tells onConsuming what consuming() says (on the connection's events and each check). */
  show(): void {
    this.deps.onConsuming?.(this.consuming());
  }

  /** One comparison of what the hub should have with what it has (see the file comment). */
  check(): void {
    if (this.stopped) return;
    this.show();
    if (!this.deps.connection.isConnected() || this.consumer.attached() || this.pausing) {
      this.missed = 0;
      return;
    }
    if (++this.missed < this.missedChecks) return;
    this.missed = 0;
    this.deps.onLinkLost?.('missing');
    const error = new Error('connected, but the uplink link is not attached and the broker said nothing of it');
    if (this.loops > 0) {
      // Its start() waits for an answer that will not come: stopped, it rejects, and the loop attaches a new one.
      this.deps.logger.error({ ...this.deps.describe(), err: error.message }, `${this.name} got no answer to its attach; it attaches anew`);
      void this.consumer.stop(0).catch(() => undefined);
    } else void this.attachAgain(error, 'missing');
  }

  async stop(timeoutMs?: number): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.wakeRetry?.();
    await this.consumer.stop(timeoutMs);
  }

  private make(): UplinkConsumer {
    return this.deps.newConsumer({
      onDetached: (error) => void this.attachAgain(error, error instanceof SessionEndedError ? 'session_ended' : 'detached'),
      onAttached: () => this.show(),
    });
  }

  private async attachUntilDone(lastReason?: string): Promise<boolean> {
    this.loops += 1;
    try {
      for (;;) {
        try {
          await this.consumer.start(null);
          this.show();
          return true;
        } catch (error) {
          if (this.stopped) return false;
          const reason = (error as Error).message;
          if (reason !== lastReason) this.deps.logger.error({ ...this.deps.describe(), err: reason, retryInMs: this.retryMs }, `${this.name} could not attach (the hub tries again every 10 s)`);
          lastReason = reason;
          await this.consumer.stop(0).catch(() => undefined);
          await this.pause();
          if (this.stopped) return false;
          this.consumer = this.make();
        }
      }
    } finally {
      this.loops -= 1;
    }
  }

  private async attachAgain(error: Error, reason: LinkLostReason): Promise<void> {
    if (this.stopped) return;
    this.loops += 1;
    if (reason !== 'missing') this.deps.onLinkLost?.(reason);
    this.show();
    this.deps.logger.error({ ...this.deps.describe(), err: error.message, retryInMs: this.retryMs }, `${this.name} lost its link (the hub attaches again in 10 s)`);
    try {
      await this.consumer.stop(0).catch(() => undefined);
      await this.pause();
      if (this.stopped) return;
      this.consumer = this.make();
    } finally {
      this.loops -= 1;
    }
    if (await this.attachUntilDone(error.message)) this.deps.logger.info(this.deps.describe(), 'consuming uplink again');
  }

  private pause(): Promise<void> {
    this.pausing = true;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.retryMs);
      this.wakeRetry = () => {
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => {
      this.wakeRetry = undefined;
      this.pausing = false;
    });
  }
}
