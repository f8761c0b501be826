import { Client, type ClientConfig } from 'pg';
import type { PublishingLease, PublishingLeaseListener } from '../../../application/ports/publishing-lease';

/** Advisory lock class of the downlink publishing lease (two-key form: class, hashtext(schema)). */
export const PUBLISHER_LOCK_CLASS = 0x52545304; // 'RTS' 04

export type PostgresPublishingLeaseOptions = Readonly<{
  /** The database of the hub's schema (RTS_POSTGRES_URL); a connection of its own is opened, never pooled. */
  connection: ClientConfig;
  schema: string;
  /** How often a process that does not hold the lease asks for it again (default 5000 ms). */
  retryMs?: number;
  /** How often the holder checks that its session still answers, and how long it waits for it (default 5000 ms). */
  heartbeatMs?: number;
}>;

/**
 * The downlink publishing lease on a PostgreSQL store shared by several hub processes: a session-level
 * `pg_try_advisory_lock(PUBLISHER_LOCK_CLASS, hashtext(schema))` on a dedicated connection. The session holds it
 * as long as it lives, so no renewal is needed, and it goes when the holder's session ends for any reason: a stop
 * (the session is closed), kill -9 (the kernel closes the socket, the server ends the session at once), a
 * pg_terminate_backend, a server restart. A process that does not hold it asks again every `retryMs`.
 *
 * A holder that vanishes without closing its socket (its host lost power, the network was cut) is noticed by the
 * server through TCP keepalives, which this session sets short (idle 10 s, then 3 probes 5 s apart: about 25 s);
 * the holder itself notices through its heartbeat (a `SELECT 1` that must answer within `heartbeatMs`) and stops
 * publishing. Between the two, both may publish for a moment: messages keep their ids and receivers dedupe.
 *
 * The connection must reach PostgreSQL itself, or a pooler in session mode: behind a transaction-mode pooler a
 * session lock means nothing.
 */
export class PostgresPublishingLease implements PublishingLease {
  private client: Client | null = null;
  private holding = false;
  private stopped = true;
  private running: Promise<void> | null = null;
  /** Ends the wait in hand (a pause, or holding the lease) at stop(). */
  private wake: (() => void) | null = null;
  /** Ends holding the lease: the session reported an error or its end. */
  private sessionEnded: ((reason: string) => void) | null = null;
  private readonly retryMs: number;
  private readonly heartbeatMs: number;

  constructor(private readonly options: PostgresPublishingLeaseOptions) {
    this.retryMs = options.retryMs ?? 5000;
    this.heartbeatMs = options.heartbeatMs ?? 5000;
  }

  start(listener: PublishingLeaseListener): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.running = this.run(listener);
  }

  held(): boolean {
    return this.holding;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
    this.running = null;
  }

  private async run(listener: PublishingLeaseListener): Promise<void> {
    let waited = false; // found the lease held by another since the last change (standby announced)
    let before = false; // held it, or found it held, before: the next acquisition is a takeover
    while (!this.stopped) {
      try {
        const client = this.client ?? (await this.connect());
        if (this.stopped) break;
        const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::int, hashtext($2)) AS ok', [PUBLISHER_LOCK_CLASS, this.options.schema]);
        if (rows[0]?.ok) {
          this.holding = true;
          listener.acquired(before ? 'takeover' : 'first');
          before = true;
          waited = false;
          const reason = await this.holdUntilLost(client);
          this.holding = false;
          if (reason === null) break; // stop(): the session is closed below, which releases the lock
          this.drop();
          listener.lost(reason);
        } else if (!waited) {
          waited = true;
          before = true;
          listener.standby?.();
        }
      } catch {
        // No session (the database is down or restarting): ask again after the pause, on a new connection.
        this.drop();
      }
      await this.pause(this.retryMs);
    }
    await this.close();
  }

  private async connect(): Promise<Client> {
    const client = new Client({ ...this.options.connection, keepAlive: true });
    // A listener is required: an 'error' without one on a pg client is an uncaught exception.
    client.on('error', (error: Error) => this.client === client && this.sessionEnded?.(describe(error)));
    client.on('end', () => this.client === client && this.sessionEnded?.('the session ended'));
    this.client = client;
    try {
      await client.connect();
      // The server notices a holder that vanished without closing its socket within about 25 s (see above).
      await client.query('SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3');
      return client;
    } catch (error) {
      this.drop();
      throw error;
    }
  }

  /** Resolves with why the lease was lost, or null when stop() ended it. */
  private holdUntilLost(client: Client): Promise<string | null> {
    return new Promise((resolve) => {
      let done = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (reason: string | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.sessionEnded = null;
        this.wake = null;
        resolve(reason);
      };
      this.sessionEnded = finish;
      this.wake = () => finish(null);
      const beat = () => {
        timer = setTimeout(() => {
          withTimeout(client.query('SELECT 1'), this.heartbeatMs).then(
            () => !done && beat(),
            (error: unknown) => finish(`the session did not answer its heartbeat (${describe(error)})`),
          );
        }, this.heartbeatMs);
      };
      beat();
      if (this.stopped) finish(null);
    });
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.stopped) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        done();
      };
    });
  }

  /** Forget the connection; ending it is not waited for (on a cut network it may never answer). */
  private drop(): void {
    const client = this.client;
    this.client = null;
    client?.end().catch(() => undefined);
  }

  /** At stop: end the session (which releases the lock), waiting at most a few seconds. */
  private async close(): Promise<void> {
    const client = this.client;
    this.client = null;
    if (!client) return;
    await withTimeout(client.end(), 3000).catch(() => undefined);
  }
}

/** A pg error's SQLSTATE or a socket's code; never the message of a connection failure (it may name the host). */
const describe = (error: unknown): string => {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return error instanceof Error && error.message === 'timeout' ? 'timeout' : 'connection error';
};

const withTimeout = <T>(promise: Promise<T>, ms: number): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), ms)))]).finally(() => clearTimeout(timer));
};
