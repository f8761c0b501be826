import { randomInt } from 'node:crypto';
import { Client, type ClientConfig } from 'pg';
import type { PublishingLease, PublishingLeaseListener } from '../../../application/ports/publishing-lease';

/** Advisory lock class of the downlink publishing lease (two-key form: class, hashtext(schema)). */
export const PUBLISHER_LOCK_CLASS = 0x52545304; // 'RTS' 04
/**
 * Advisory lock class of a lease session's mark (two-key form: class, a random int of the session): what tells the
 * session this process lost from another client's that a session pooler gave the same server backend to since.
 */
export const LEASE_SESSION_MARK_CLASS = 0x52545306; // 'RTS' 06

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
  /** The server's side of the lease's current session: its backend's pid and start. */
  private session: BackendSession | null = null;
  /**
   * The session that held the lease when this process lost it. Lost to a heartbeat that got no answer, it may still
   * live on the server, holding the lock, with nothing left on this side to end it: a proxy or pooler that stopped
   * forwarding keeps its own connection to the server open (and answers its keepalives), so neither end notices.
   * Every hub process then stood by, and nobody published the downlink, until that connection went. The next session
   * this process opens ends it (pg_terminate_backend, only while it still holds this lease's lock).
   */
  private orphan: BackendSession | null = null;

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
        if (this.orphan) await this.endOrphan(client, this.orphan);
        const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::int, hashtext($2)) AS ok', [PUBLISHER_LOCK_CLASS, this.options.schema]);
        if (rows[0]?.ok) {
          this.holding = true;
          listener.acquired(before ? 'takeover' : 'first');
          before = true;
          waited = false;
          const reason = await this.holdUntilLost(client);
          this.holding = false;
          if (reason === null) break; // stop(): the session is closed below, which releases the lock
          this.orphan = this.session;
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
      // The backend's pid and start do not name this session behind a session pooler (PgBouncer keeps the backend when
      // its client goes, resets it and gives it to the next client, maybe another hub's lease): a mark of its own, an
      // advisory lock of a random key, does, as the pooler's reset (DISCARD ALL) drops it with the lease's lock.
      const mark = randomInt(-0x80000000, 0x80000000);
      const { rows } = await client.query<{ pid: number; started: string; marked: boolean }>(
        'SELECT pid, backend_start::text AS started, pg_try_advisory_lock($1::int, $2::int) AS marked FROM pg_stat_activity WHERE pid = pg_backend_pid()',
        [LEASE_SESSION_MARK_CLASS, mark],
      );
      this.session = rows[0]?.marked ? { pid: rows[0].pid, started: rows[0].started, mark } : null;
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

  /**
   * Ends the session that held the lease before this process lost it, if it still holds the lock (the same backend:
   * pid and start time, so a pid the server gave to another session since is left alone; and still the session's
   * mark, so a backend a session pooler gave to another client since, another hub's lease among them, is too). A role
   * may end its own sessions; one that may not (42501) leaves it to the server's TCP keepalives, as before.
   */
  private async endOrphan(client: Client, orphan: BackendSession): Promise<void> {
    try {
      await client.query(
        `SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
          WHERE a.pid = $1 AND a.backend_start::text = $2 AND l.locktype = 'advisory' AND l.granted
            AND l.classid = $3::int::oid AND l.objid = hashtext($4)::oid AND l.objsubid = 2
            AND EXISTS (SELECT 1 FROM pg_locks m WHERE m.pid = a.pid AND m.locktype = 'advisory' AND m.granted
                          AND m.classid = $5::int::oid AND m.objid = $6::int::oid AND m.objsubid = 2)`,
        [orphan.pid, orphan.started, PUBLISHER_LOCK_CLASS, this.options.schema, LEASE_SESSION_MARK_CLASS, orphan.mark],
      );
    } catch (error) {
      if ((error as { code?: unknown } | null)?.code !== '42501') throw error;
    }
    this.orphan = null;
  }

  /** Forget the connection; ending it is not waited for (on a cut network it may never answer). */
  private drop(): void {
    const client = this.client;
    this.client = null;
    this.session = null;
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

type BackendSession = Readonly<{ pid: number; started: string; mark: number }>;

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
