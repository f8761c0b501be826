// A DurableSender whose sends survive a failover: a transfer lost with the connection (or released, modified,
// timed out) is sent again once the connection is back, the same message (same message id), until the broker
// accepts it or `retryForMs` passes (each attempt gets `sendTimeoutMs` or what is left of the window, whichever is
// shorter, and none starts after it); a broker `rejected` is final. For callers typed on DurableSender that forward
// rhea messages as they are (dead-letter replays); plain OutgoingMessage sends can use RetryingSender.
import type { Message } from 'rhea';
import { WakeUp } from '../../application/wake-up';
import type { AmqpConnection } from './connection';
import { DurableSender, SendError, type DurableSenderOptions, type SendOptions } from './durable-sender';

export interface RetryingDurableSenderOptions extends DurableSenderOptions {
  /** Give up after this many ms of retrying (default 120000). */
  retryForMs?: number;
  /** Pause before resending after a released/modified/timeout outcome while connected (default 200 ms). */
  retryDelayMs?: number;
  onRetry?: (event: { queue: string; attempt: number; reason: string }) => void;
}

export class RetryingDurableSender extends DurableSender {
  private readonly attemptTimeoutMs: number;
  private readonly retryForMs: number;
  private readonly retryDelayMs: number;
  private stopped = false;
  /** Ends the sends' waits for a reconnect (and their pauses) at close(), as RetryingSender's: a stop must not sit out retryForMs. */
  private readonly closing = new WakeUp();

  constructor(
    private readonly conn: AmqpConnection,
    private readonly retryOptions: RetryingDurableSenderOptions = {},
  ) {
    super(conn, { sendTimeoutMs: retryOptions.sendTimeoutMs ?? 15000 });
    this.attemptTimeoutMs = retryOptions.sendTimeoutMs ?? 15000;
    this.retryForMs = retryOptions.retryForMs ?? 120000;
    this.retryDelayMs = retryOptions.retryDelayMs ?? 200;
  }

  /**
   * Sends (and resends) until accepted; rejects with the last SendError when not retryable or out of time: never later
   * than `retryForMs` after the call, or `options.timeoutMs` when given (a caller's own deadline, as for DurableSender).
   */
  override async sendRaw(queue: string, message: Message, options: SendOptions = {}): Promise<void> {
    const deadline = performance.now() + (options.timeoutMs ?? this.retryForMs);
    for (let attempt = 1; ; attempt++) {
      try {
        // An attempt that started late in the window (after a wait for the reconnect) must not hold the send open for
        // up to another sendTimeoutMs past the window, and be accepted long after the caller was told it failed.
        await super.sendRaw(queue, message, { timeoutMs: Math.max(1, Math.min(this.attemptTimeoutMs, deadline - performance.now())) });
        return;
      } catch (error) {
        if (!(error instanceof SendError) || !error.retryable || this.stopped || performance.now() >= deadline) throw error;
        try {
          this.retryOptions.onRetry?.({ queue, attempt, reason: error.reason });
        } catch {
          // observers must not break sending
        }
        if (!this.conn.isConnected()) await this.closing.race(this.conn.waitConnected(Math.max(1, deadline - performance.now())).catch(() => undefined));
        if (error.reason !== 'disconnected' && !this.stopped) await this.closing.race(sleep(Math.min(this.retryDelayMs, Math.max(0, deadline - performance.now()))));
        // Closed meanwhile: the send ends now, as the sends in hand did.
        if (this.stopped) throw new SendError('closed', queue);
        // The wait may end with the window (no reconnect in time): no attempt starts after it.
        if (performance.now() >= deadline) throw error;
      }
    }
  }

  override async close(): Promise<void> {
    this.stopped = true;
    this.closing.fire();
    await super.close();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
