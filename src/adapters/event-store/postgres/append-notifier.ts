import { Client, type ClientConfig, type Notification } from 'pg';
import { quoteIdent } from './sql';

type Waiter = { after: bigint; wake: () => void };

/**
 * Wakes subscribers when an append commits. Each append runs `pg_notify(channel, lastPosition)` inside its
 * transaction; PostgreSQL delivers the notification only after the commit, so a woken reader will find the rows.
 *
 * One dedicated connection (not from the pool: a pooled connection's LISTEN would leak to other users) per store,
 * opened on the first wait. Notifications are a hint, never the source of truth: `waitForAppend` checks the head
 * position after LISTEN is in place, and every wait ends at its timeout anyway. If the listening connection
 * breaks, waits degrade to plain sleeps until the next wait reconnects.
 */
export class AppendNotifier {
  private client: Client | null = null;
  private connecting: Promise<Client | null> | null = null;
  private readonly waiters = new Set<Waiter>();
  private closed = false;

  constructor(
    private readonly config: ClientConfig,
    readonly channel: string,
  ) {}

  /** Makes sure LISTEN is active (best effort). Resolves true when notifications will arrive. */
  async listen(): Promise<boolean> {
    if (this.closed) return false;
    if (this.client) return true;
    this.connecting ??= this.connect();
    const client = await this.connecting;
    return client !== null;
  }

  /** Resolves when a notification above `after` arrives, when `close()` is called, or after `timeoutMs`. */
  wait(after: bigint, timeoutMs: number, alreadyThere: () => Promise<boolean>): Promise<void> {
    return new Promise<void>((resolve) => {
      const waiter: Waiter = {
        after,
        wake: () => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(waiter.wake, Math.max(0, timeoutMs));
      if (this.closed) return waiter.wake();
      this.waiters.add(waiter);
      // Registered first, checked second: an append that commits between the two is seen by one or the other.
      alreadyThere().then(
        (yes) => yes && waiter.wake(),
        () => undefined, // the timeout still ends the wait
      );
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const waiter of [...this.waiters]) waiter.wake();
    const client = this.client ?? (this.connecting ? await this.connecting : null);
    this.client = null;
    if (client) await client.end().catch(() => undefined);
  }

  private async connect(): Promise<Client | null> {
    const client = new Client(this.config);
    client.on('error', () => this.drop(client));
    client.on('end', () => this.drop(client));
    client.on('notification', (message: Notification) => this.onNotification(message));
    try {
      await client.connect();
      await client.query(`LISTEN ${quoteIdent(this.channel)}`);
      if (this.closed) {
        await client.end().catch(() => undefined);
        return null;
      }
      this.client = client;
      return client;
    } catch {
      await client.end().catch(() => undefined);
      return null;
    } finally {
      this.connecting = null;
    }
  }

  private drop(client: Client): void {
    if (this.client === client) this.client = null;
  }

  private onNotification(message: Notification): void {
    if (message.channel !== this.channel) return;
    let position: bigint;
    try {
      position = BigInt(message.payload ?? '');
    } catch {
      position = -1n; // unreadable payload: wake everyone, they re-read anyway
    }
    for (const waiter of [...this.waiters]) {
      if (position < 0n || position > waiter.after) waiter.wake();
    }
  }
}
