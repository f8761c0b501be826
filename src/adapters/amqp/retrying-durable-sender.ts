// A DurableSender whose sends survive a failover: a transfer lost with the connection (or released, modified,
// timed out) is sent again once the connection is back, the same message (same message id), until the broker
// accepts it or `retryForMs` passes; a broker `rejected` is final. For callers typed on DurableSender that forward
// rhea messages as they are (dead-letter replays); plain OutgoingMessage sends can use RetryingSender.
import type { Message } from 'rhea';
import type { AmqpConnection } from './connection';
import { DurableSender, SendError, type DurableSenderOptions } from './durable-sender';

export interface RetryingDurableSenderOptions extends DurableSenderOptions {
  /** Give up after this many ms of retrying (default 120000). */
  retryForMs?: number;
  /** Pause before resending after a released/modified/timeout outcome while connected (default 200 ms). */
  retryDelayMs?: number;
  onRetry?: (event: { queue: string; attempt: number; reason: string }) => void;
}

export class RetryingDurableSender extends DurableSender {
  private readonly retryForMs: number;
  private readonly retryDelayMs: number;
  private stopped = false;

  constructor(
    private readonly conn: AmqpConnection,
    private readonly retryOptions: RetryingDurableSenderOptions = {},
  ) {
    super(conn, { sendTimeoutMs: retryOptions.sendTimeoutMs ?? 15000 });
    this.retryForMs = retryOptions.retryForMs ?? 120000;
    this.retryDelayMs = retryOptions.retryDelayMs ?? 200;
  }

  override async sendRaw(queue: string, message: Message): Promise<void> {
    const deadline = performance.now() + this.retryForMs;
    for (let attempt = 1; ; attempt++) {
      try {
        await super.sendRaw(queue, message);
        return;
      } catch (error) {
        if (!(error instanceof SendError) || !error.retryable || this.stopped || performance.now() >= deadline) throw error;
        try {
          this.retryOptions.onRetry?.({ queue, attempt, reason: error.reason });
        } catch {
          // observers must not break sending
        }
        if (!this.conn.isConnected()) await this.conn.waitConnected(Math.max(1, deadline - performance.now())).catch(() => undefined);
        if (error.reason !== 'disconnected') await new Promise((r) => setTimeout(r, Math.min(this.retryDelayMs, Math.max(0, deadline - performance.now()))));
      }
    }
  }

  override async close(): Promise<void> {
    this.stopped = true;
    await super.close();
  }
}
