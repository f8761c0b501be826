// One AMQP 1.0 connection (rhea) that fails over across a list of broker endpoints.
//
// rhea pitfalls this wrapper designs around (see ARCHITECTURE.md, "High availability and scale-out"):
// - `connection_details(n)` is called with the number of *successful* connections so far, not the number of
//   attempts: using `n % endpoints.length` would retry the same dead broker forever. We keep our own attempt
//   counter and rotate on every attempt.
// - On reconnect rhea re-attaches links, but receivers come back with credit 0 and unsettled outgoing deliveries
//   are silently forgotten (no accepted/rejected ever arrives). Senders and consumers built on this class listen
//   to `disconnected` and fail or redo their in-flight work; see durable-sender.ts and queue-consumer.ts.
// - A remote close with an error condition not in `non_fatal_errors` stops reconnecting. We widen the default
//   list (forced, internal-error, resource-limit-exceeded) so a broker shutting down or restarting is survived.
// - Unhandled rhea events bubble to the container and may be printed with console.warn; ours has listeners.
// - A refused SASL login is kept as rhea's transport error for good: rhea never reconnects after it, and a reconnect
//   we start ourselves is ended at once unless that error is cleared first (retryRefusedLoginMs does).
// - rhea sends the same container-id on every reconnect, and ActiveMQ takes it as the connection's client id, one
//   connection per id: after a connection the broker still holds (its transport thread stuck writing to us while
//   our idle timeout dropped it), every reconnect was refused with `amqp:invalid-field` "Client: ... already
//   connected". Each attempt here opens with an id of its own (`<containerId>-<attempt>`).
// - A remote close with a fatal condition right after the open (that refusal, say) fires `connection_open`, then
//   `connection_error`, and never `disconnected`: rhea ends the socket quietly. We watch the socket ourselves so
//   `isConnected()` and `disconnected` follow it whatever the cause.
// - With `retryFatalCloseMs` rhea is told every condition is non-fatal (`all_errors_non_fatal`), so its own reconnect
//   path (links re-attached) runs; the delay after a close we count as fatal is ours, and longer.
// - A link (or session) opened between a lost connection and rhea's next attempt never attaches: its attach goes into
//   the lost connection's frame buffer, which the attempt replaces, and rhea re-attaches only what was open when the
//   connection dropped. No event says so. openSender/openReceiver mark such a link as open at the drop (see
//   keepForReconnect), so the attempt attaches it like the others.
// - A broker that ends a session (an AMQP `end`) ends its links, but rhea tells only the session (`session_close`),
//   never the links: we pass it on as `sessionEnded`, for the links' owners to act on.
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import {
  create_container,
  type Connection,
  type ConnectionOptions,
  type EventContext,
  type Receiver,
  type ReceiverOptions,
  type Sender,
  type SenderOptions,
  type Session,
} from 'rhea';
import { EndpointRotation, StaticEndpoints, backoffDelay, sameEndpoint, type EndpointProvider } from './endpoint-set';
import { ensureRheaSettlementFix } from './rhea-settlement-fix';

// Before any connection settles a delivery: rhea 3.0.x gave the second of two settlements sent together the first
// one's outcome (rhea-settlement-fix.ts).
ensureRheaSettlementFix();

export interface AmqpEndpoint {
  host: string;
  port: number;
  /** AMQP over TLS (amqps://, ActiveMQ's amqp+ssl://): the broker's certificate is verified for `host`. */
  tls?: boolean;
}

/**
 * TLS settings for the endpoints that use it: `ca` (PEM) when the broker's certificate is not signed by a CA the
 * system trusts; `cert` and `key` for a broker that asks for client certificates. The certificate is always
 * verified, for the host name or IP address the endpoint names.
 */
export type AmqpTls = Readonly<Pick<TlsConnectionOptions, 'ca' | 'cert' | 'key' | 'minVersion'>>;

/** What rhea's connect gets for one endpoint: TLS with verification for TLS endpoints, plain TCP otherwise. */
export function transportOf(endpoint: AmqpEndpoint, tls: AmqpTls | undefined): { transport: 'tcp' } | { transport: 'tls'; options: TlsConnectionOptions } {
  if (!endpoint.tls) return { transport: 'tcp' };
  return {
    transport: 'tls',
    options: {
      ...tls,
      host: endpoint.host,
      // SNI takes a name, not an address; an address is still verified against the certificate's IP entries.
      ...(isIP(endpoint.host) === 0 ? { servername: endpoint.host } : {}),
      rejectUnauthorized: true,
      minVersion: tls?.minVersion ?? 'TLSv1.2',
    },
  };
}

/**
 * How the client authenticates.
 * - `none`: no SASL layer (ActiveMQ needs `wireFormat.allowNonSaslConnections=true` on the connector).
 * - `anonymous`: SASL ANONYMOUS.
 * - `plain`: SASL PLAIN with username and password.
 */
export type AmqpSasl = { mechanism: 'none' } | { mechanism: 'anonymous' } | { mechanism: 'plain'; username: string; password: string };

export interface AmqpConnectionOptions {
  /** Brokers to try, in order; every failed or lost connection moves on to the next one. Give this or `endpointProvider`. */
  endpoints?: readonly AmqpEndpoint[];
  /**
   * A changing set of brokers (e.g. MulticastDiscovery's live set), asked on every attempt. With an empty set the
   * first connect waits for an endpoint; a reconnect retries the last one until the set has others.
   */
  endpointProvider?: EndpointProvider;
  /** Spread each reconnect delay randomly over [delay*(1-jitter), delay] (0..1, default 0.3). */
  reconnectJitter?: number;
  /** A broker that failed is skipped for this long while others are offered (default 3000 ms). */
  failureCooldownMs?: number;
  /** First endpoint: 'first' in list order (default for `endpoints`) or 'random' (default for a provider). */
  startAt?: 'first' | 'random';
  sasl?: AmqpSasl;
  /** TLS settings for endpoints with `tls: true` (see AmqpTls); the system's CAs when left out. */
  tls?: AmqpTls;
  /**
   * AMQP container id, as a prefix (shows up in broker logs); default `rts-<random>`. Each connection attempt opens
   * with `<containerId>-<attempt>`, so a stale connection of ours the broker still holds never refuses a new one
   * (ActiveMQ allows one connection per container-id, its JMS client id). Nothing here needs a stable id: queues
   * only, no durable topic subscriptions.
   */
  containerId?: string;
  /** Reconnect after a lost connection or a failed attempt (default true). */
  reconnect?: boolean;
  /** First delay between attempts in ms, doubled per failed attempt (default 100). */
  initialReconnectDelayMs?: number;
  /** Cap on the delay between attempts in ms (default 2000). */
  maxReconnectDelayMs?: number;
  /** Give up after this many consecutive failed attempts (default: never). */
  reconnectLimit?: number;
  /** AMQP idle timeout in ms; heartbeats are sent at half of the peer's value (default 16000). */
  idleTimeoutMs?: number;
  /**
   * An attempt that has no AMQP open from the broker this long after it began is given up, and the next one made
   * (default 15000 ms; 0: wait for ever). The idle timeout only runs once a connection is open: a broker that took
   * the TCP connection and never answered (its transport threads stuck) held the attempt, and the hub, for ever.
   */
  openTimeoutMs?: number;
  /** Remote close conditions after which we still reconnect. */
  nonFatalErrors?: readonly string[];
  /**
   * A broker that refuses the login (SASL): by default that is fatal, an `error` (AmqpLoginRefusedError) and no
   * reconnect, which is what a caller that is starting wants to hear at once. With this set, the connection also
   * tries again every this many ms (a long-running service: the broker's accounts may be fixed or rotated while it
   * runs), and emits `error` once per refusal.
   */
  retryRefusedLoginMs?: number;
  /**
   * A broker that closes the connection with a condition not in `nonFatalErrors` (`amqp:not-allowed`, an
   * `amqp:unauthorized-access` after the open, a vendor's own): by default that is fatal, an `error` and no
   * reconnect. With this set, the connection emits `error` once per such close and tries again this many ms later,
   * then with its usual backoff: a long-running service should not stay disconnected until someone restarts it.
   */
  retryFatalCloseMs?: number;
}

/** The broker refused the login (SASL outcome not ok: an unknown user, a wrong password, or no anonymous access). */
export class AmqpLoginRefusedError extends Error {
  readonly code = 'login_refused';
  constructor(
    readonly endpoint: AmqpEndpoint | undefined,
    /** The user name tried (never the password); undefined for no SASL or ANONYMOUS. */
    readonly username: string | undefined,
  ) {
    const at = endpoint ? `${endpoint.host}:${endpoint.port}` : 'the broker';
    super(
      username === undefined
        ? `${at} refused the connection without credentials: it requires a login (SASL PLAIN user name and password)`
        : `${at} refused the login of user ${JSON.stringify(username)}: the user name or the password is not what the broker has`,
    );
    this.name = 'AmqpLoginRefusedError';
  }
}

export interface ConnectedEvent {
  endpoint: AmqpEndpoint;
  /** Number of successful connections so far, this one included (1 on the first). */
  connectionCount: number;
}

export interface DisconnectedEvent {
  endpoint: AmqpEndpoint | undefined;
  error: Error | undefined;
  /** Whether a reconnect is scheduled; false after close() or when the reconnect limit is reached. */
  reconnecting: boolean;
}

export interface AmqpConnectionEvents {
  connected: [ConnectedEvent];
  disconnected: [DisconnectedEvent];
  /** A fatal problem: the connection will not recover by itself (auth failure, fatal remote close). */
  error: [Error];
  /**
   * The broker ended a session (an AMQP `end`), and with it every link on it, which rhea does not tell the links.
   * `error`: the broker's reason, when it gave one. Also after a session we closed ourselves (the broker's answer).
   */
  sessionEnded: [Session, Error | undefined];
  /**
   * close() was called (once): nothing more comes on this connection. rhea says nothing of a connection closed from
   * our side ('disconnected' is not emitted then), so a request waiting for the broker's answer listens for this to
   * end at once instead of at its own timeout.
   */
  closed: [];
}

// What a broker going away, restarting, or a slave in the middle of taking over may close a connection with.
// rhea stops reconnecting after any other condition; authentication failures stay fatal.
export const DEFAULT_NON_FATAL_ERRORS: readonly string[] = [
  'amqp:connection:forced',
  'amqp:internal-error',
  'amqp:resource-limit-exceeded',
  'amqp:not-found',
  'amqp:illegal-state',
  'amqp:precondition-failed',
  'amqp:connection:framing-error',
  'amqp:connection:redirect',
  // ActiveMQ sometimes closes connections with decode-error while it shuts down: a failover, not a fault of ours.
  'amqp:decode-error',
  // ActiveMQ refusing a container-id (client id) another connection holds: "Client: ... already connected from ...".
  // That one may be a stale connection of ours the broker has not noticed is gone; it does let go of it in the end.
  'amqp:invalid-field',
];

let containerCounter = 0;

/** A connection the broker closes with an error this soon after its open was refused, not lost. */
const REFUSAL_WITHIN_MS = 1000;

export class AmqpConnection extends EventEmitter<AmqpConnectionEvents> {
  /** The underlying rhea connection, for links not covered by this layer. */
  readonly raw: Connection;
  private readonly provider: EndpointProvider;
  private readonly rotation: EndpointRotation;
  private lastTried: readonly AmqpEndpoint[] = [];
  private failures = 0;
  /** `failures` when the current connection opened: restored when the broker closes it at once (a refusal). */
  private failuresAtOpen = 0;
  private openedAt = 0;
  /** Attempts so far, the first included: the suffix of each attempt's container-id. */
  private attempts = 0;
  /** The socket of the open connection; its close is the end of that connection, whether rhea says so or not. */
  private openSocket: import('node:net').Socket | undefined;
  private openTimer: NodeJS.Timeout | undefined;
  private moving = false;
  private unsubscribe: (() => void) | undefined;
  private current: AmqpEndpoint | undefined;
  private connected = false;
  private connectionCount = 0;
  private closing = false;
  private closed = false;
  /** Why the last attempt or connection ended, for waitConnected's message (a TLS certificate refused, say). */
  private lastFailure: Error | undefined;
  /** Set when the broker refused the login on the current attempt; reported with the `disconnected` that follows. */
  private refused: AmqpLoginRefusedError | undefined;
  /** A remote close's error we reconnect after; reported with the `disconnected` that follows. */
  private closedBy: Error | undefined;
  /** The last remote close had a fatal condition and retryFatalCloseMs is set: the next delay is that long. */
  private fatalClose = false;

  private constructor(options: AmqpConnectionOptions) {
    super();
    if (options.endpointProvider) this.provider = options.endpointProvider;
    else if (options.endpoints && options.endpoints.length > 0) this.provider = new StaticEndpoints(options.endpoints);
    else throw new Error('AmqpConnection: at least one endpoint (or an endpointProvider) is required');
    this.rotation = new EndpointRotation({
      failureCooldownMs: options.failureCooldownMs ?? 3000,
      start: options.startAt ?? (options.endpointProvider ? 'random' : 'first'),
    });
    const initialDelay = options.initialReconnectDelayMs ?? 100;
    const maxDelay = options.maxReconnectDelayMs ?? 2000;
    const jitter = options.reconnectJitter ?? 0.3;
    const limit = options.reconnectLimit;
    const containerId = options.containerId ?? `rts-${process.pid}-${++containerCounter}-${Math.random().toString(36).slice(2, 8)}`;
    const container = create_container({ id: containerId });
    const sasl = options.sasl ?? { mechanism: 'none' };
    const first = this.provider.current()[0];
    // rhea calls a function-valued `reconnect` with its count of successes; we count failures ourselves so the
    // backoff grows per failed attempt, resets on success, and carries jitter.
    const retryFatal = options.retryFatalCloseMs;
    const reconnect =
      (options.reconnect ?? true)
        ? () => {
            if (limit !== undefined && this.failures >= limit) return -1;
            const delay = backoffDelay(this.failures++, { initialMs: initialDelay, maxMs: maxDelay, jitter });
            if (!this.fatalClose) return delay;
            this.fatalClose = false;
            return Math.max(delay, retryFatal ?? 0);
          }
        : false;
    const connectionOptions: ConnectionOptions = {
      host: first?.host ?? '127.0.0.1',
      port: first?.port ?? 5672,
      reconnect: reconnect as unknown as boolean,
      idle_time_out: options.idleTimeoutMs ?? 16000,
      non_fatal_errors: [...(options.nonFatalErrors ?? DEFAULT_NON_FATAL_ERRORS)],
      ...(retryFatal !== undefined && options.reconnect !== false ? { all_errors_non_fatal: true } : {}),
      // Rotate on every attempt: rhea passes the count of *successes*, which does not move on a failed attempt.
      connection_details: () => {
        const offered = this.provider.current();
        if (offered.length > 0) this.lastTried = offered;
        const endpoint = this.rotation.next(this.lastTried, performance.now()) ?? this.current ?? { host: first?.host ?? '127.0.0.1', port: first?.port ?? 5672 };
        this.current = endpoint;
        // rhea builds its Open frame once; each attempt gets an id of its own (see the header).
        (this.raw as unknown as RheaInternals).local.open.container_id = `${containerId}-${++this.attempts}`;
        this.armOpenTimer(options.openTimeoutMs ?? 15_000);
        return { host: endpoint.host, port: endpoint.port, ...transportOf(endpoint, options.tls) };
      },
    };
    if (sasl.mechanism === 'anonymous') connectionOptions.username = 'anonymous';
    if (sasl.mechanism === 'plain') {
      connectionOptions.username = sasl.username;
      connectionOptions.password = sasl.password;
    }
    this.raw = container.create_connection(connectionOptions);
    // A frame rhea cannot take (a broker that answers with a SASL layer we did not ask for, say): rhea prints it,
    // with the bytes it read, to stderr unless someone listens. It ends the connection, and 'disconnected' below
    // reports it with its cause, in the hub's log lines.
    this.raw.on('protocol_error', () => undefined);
    this.raw.on('connection_open', () => {
      this.clearOpenTimer();
      this.connected = true;
      this.failuresAtOpen = this.failures;
      this.openedAt = performance.now();
      this.failures = 0;
      const socket = (this.raw as unknown as RheaInternals).socket;
      this.openSocket = socket;
      socket?.once('close', () =>
        // After rhea's own handling of the socket's end: when it said nothing (a fatal remote close), we do.
        setImmediate(() => {
          if (!this.connected || this.openSocket !== socket || this.closing) return;
          this.openSocket = undefined;
          this.connected = false;
          if (this.current) this.rotation.markFailed(this.current, performance.now());
          this.lastFailure = this.lastError ?? this.lastFailure;
          this.emit('disconnected', { endpoint: this.current, error: this.lastError, reconnecting: false });
        }),
      );
      this.lastFailure = undefined;
      if (this.current) this.rotation.markConnected(this.current);
      this.connectionCount += 1;
      // Next failure starts from the endpoint after this one.
      this.emit('connected', { endpoint: this.current!, connectionCount: this.connectionCount });
    });
    this.raw.on('disconnected', (context: EventContext) => {
      this.clearOpenTimer();
      this.connected = false;
      this.openSocket = undefined;
      if (this.current && !this.moving) this.rotation.markFailed(this.current, performance.now());
      this.moving = false;
      const raw = this.raw as unknown as RheaInternals;
      // An Error from Node's own realm (a socket or TLS error) fails `instanceof Error` inside a test's vm realm.
      const cause = context.error as { message?: unknown } | undefined;
      const lost = cause instanceof Error ? cause : typeof cause?.message === 'string' ? new Error(cause.message) : cause ? new Error(String(cause)) : undefined;
      let refused = this.refused;
      this.refused = undefined;
      // A broker that closed the connection with a (non-fatal) error says why there, not on the socket.
      const closedBy = this.closedBy;
      this.closedBy = undefined;
      if (refused === undefined && sasl.mechanism === 'none' && lost !== undefined && /SASL layer not enabled/i.test(lost.message)) {
        // No SASL layer sent, and the broker answered with one: it takes no connection without a login.
        refused = new AmqpLoginRefusedError(this.current, undefined);
        this.emitError(refused);
      }
      let reconnecting = Boolean(context.reconnecting) && !this.closing;
      if (refused) {
        // rhea never reconnects after a refused login (it keeps it as its transport error for good), but does after
        // a missing SASL layer. Either way: fatal, unless retryRefusedLoginMs asks for another try later. That try
        // goes in rhea's own slot, so close() cancels it like any reconnect.
        if (raw.scheduled_reconnect) clearTimeout(raw.scheduled_reconnect);
        raw.scheduled_reconnect = undefined;
        reconnecting = false;
        if (options.retryRefusedLoginMs !== undefined && !this.closing && options.reconnect !== false) {
          raw.transport_error = undefined;
          raw.scheduled_reconnect = setTimeout(() => {
            raw.scheduled_reconnect = undefined;
            if (!this.closing) this.raw.reconnect();
          }, options.retryRefusedLoginMs);
          reconnecting = true;
        }
      }
      // After a refused login rhea's own error is the socket's ("write after end"): report the refusal instead.
      this.lastFailure = refused ?? lost ?? closedBy ?? this.lastFailure;
      this.emit('disconnected', { endpoint: this.current, error: refused ?? lost ?? closedBy, reconnecting });
    });
    this.raw.on('connection_error', (context: EventContext) => {
      // A refused login (rhea's transport error, before any open) or a remote close with an error; whether rhea
      // reconnects after a remote close depends on the non-fatal list, and it never does after a refused login.
      const error = (context.error ?? this.raw.error) as { condition?: string } | undefined;
      const condition = error?.condition;
      if (condition === 'amqp:unauthorized-access' && !this.connected) {
        this.refused = new AmqpLoginRefusedError(this.current, sasl.mechanism === 'plain' ? sasl.username : undefined);
        this.emitError(this.refused);
      } else if (condition !== undefined && !(options.nonFatalErrors ?? DEFAULT_NON_FATAL_ERRORS).includes(condition)) {
        const fatal = toError(error, 'AMQP connection closed by peer');
        this.emitError(fatal);
        if (retryFatal !== undefined && options.reconnect !== false) {
          // rhea reconnects (all_errors_non_fatal); the reconnect function above makes the first delay ours.
          this.fatalClose = true;
          this.closedBy = fatal;
          if (this.connected && performance.now() - this.openedAt < REFUSAL_WITHIN_MS) this.failures = this.failuresAtOpen;
        }
      } else if (condition !== undefined) {
        this.closedBy = toError(error, 'AMQP connection closed by peer');
        // Opened and closed at once (a client id refused): a failed attempt, so the backoff goes on growing
        // rather than starting again at the first delay, which would knock once per initial delay.
        if (this.connected && performance.now() - this.openedAt < REFUSAL_WITHIN_MS) this.failures = this.failuresAtOpen;
      }
    });
    this.raw.on('connection_close', () => {
      // Handled so rhea does not raise an unhandled 'error'; `disconnected` follows when the socket goes.
    });
    this.raw.on('error', (error: unknown) => {
      this.emitError(toError(error, 'AMQP connection error'));
    });
    // Link-level errors surface on the links; keep them from reaching the container's default handlers.
    this.raw.on('sender_error', () => undefined);
    this.raw.on('receiver_error', () => undefined);
    this.raw.on('session_error', () => undefined);
    this.raw.on('session_close', (context: EventContext) => {
      const session = context.session;
      const error = session?.error as { condition?: string } | undefined;
      if (session) this.emit('sessionEnded', session, error ? toError(error, 'session ended by the broker') : undefined);
    });
  }

  /** Creates the connection and starts connecting (resolve readiness with `waitConnected`). */
  static open(options: AmqpConnectionOptions): AmqpConnection {
    const connection = new AmqpConnection(options);
    if (connection.provider.current().length > 0) {
      connection.raw.connect();
    } else {
      // Nothing discovered yet: connect on the first endpoint that shows up.
      connection.unsubscribe = connection.provider.subscribe((change) => {
        if (change.kind !== 'added' || connection.closing) return;
        connection.unsubscribe?.();
        connection.unsubscribe = undefined;
        connection.raw.connect();
      });
    }
    return connection;
  }

  /**
   * Moves this connection to `endpoint` (e.g. a broker that just joined): drops the socket and reconnects there.
   * What the drop does to in-flight work is the same as any lost connection (senders resend, consumers' deliveries
   * are redelivered by the broker). No-op when already there or not connected.
   */
  moveTo(endpoint: AmqpEndpoint): boolean {
    if (!this.connected || this.closing || sameEndpoint(this.current, endpoint)) return false;
    const socket = (this.raw as unknown as RheaInternals).socket;
    if (!socket || socket.destroyed) return false;
    this.rotation.prefer(endpoint);
    this.moving = true;
    socket.destroy(new Error(`moving to ${endpoint.host}:${endpoint.port}`));
    return true;
  }

  isConnected(): boolean {
    return this.connected;
  }

  /** The endpoint of the current (or last attempted) connection. */
  endpoint(): AmqpEndpoint | undefined {
    return this.current;
  }

  /** Resolves once connected; rejects after `timeoutMs`, on a fatal error, or if closed. */
  waitConnected(timeoutMs = 30000): Promise<void> {
    if (this.connected) return Promise.resolve();
    if (this.closed || this.closing) return Promise.reject(new Error('AmqpConnection is closed'));
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        this.off('connected', onConnected);
        this.off('error', onError);
        this.off('closed', onClosed);
      };
      const onConnected = () => {
        cleanup();
        resolve();
      };
      const onError = (error: Error) => {
        cleanup();
        reject(error);
      };
      // A wait under way ends at close() too: it sat out its timeout (a sender's 120 s window, on a timer that kept a
      // stopped process alive), and no connection could come any more.
      const onClosed = () => {
        cleanup();
        reject(new Error('AmqpConnection is closed'));
      };
      const timer = setTimeout(() => {
        cleanup();
        const last = this.lastFailure ? `; last attempt: ${this.lastFailure.message}` : '';
        reject(new Error(`AMQP connection not established within ${timeoutMs} ms (${this.describeEndpoints()}${last})`));
      }, timeoutMs);
      this.on('connected', onConnected);
      this.on('error', onError);
      this.on('closed', onClosed);
    });
  }

  openSender(options: SenderOptions): Sender {
    return this.keepForReconnect(this.raw.open_sender(options));
  }

  openReceiver(options: ReceiverOptions): Receiver {
    return this.keepForReconnect(this.raw.open_receiver(options));
  }

  /**
   * A receiver on an AMQP session of its own, for short-lived work (browsing, selective moves) whose deliveries
   * must not stay in the shared session: rhea keeps every unsettled incoming delivery in its session's buffer
   * (2,048 entries) and offers the peer only the free part as its window, so deliveries a link leaves unsettled
   * when it closes stop every other link on that session, the uplink consumer's included. `close()` ends the
   * session, and with it whatever it still holds (the broker gives unsettled messages back to their queue).
   * `bufferSize`: the session's delivery buffer, i.e. its window; at least the credit the link will give, since
   * ActiveMQ answers a drain as done when the window is closed, and a browse of more then ended early.
   */
  openReceiverOnOwnSession(options: ReceiverOptions, bufferSize = 2048): { receiver: Receiver; close(): void } {
    const session = this.raw.create_session(bufferSize);
    session.begin();
    const receiver = this.keepForReconnect(session.open_receiver(options));
    return {
      receiver,
      close: () => endLink(receiver, this.connected, session),
    };
  }

  /**
   * A link opened while no attempt is under way (the connection lost and rhea's next attempt not begun, or not yet
   * connected at all) is written into a frame buffer the next attempt throws away, and rhea's reconnect re-attaches
   * only the links (and sessions) that were open when the connection dropped: the link would wait for ever, with no
   * event (a consumer opened at the end of the hub's 10 s wait, in the last pause before the reconnect that worked,
   * never consumed). Marked as it would have been at the drop (rhea's own `disconnected()` of the endpoint state),
   * the link, and a session opened for it, are attached by the next attempt. During an attempt (socket connecting)
   * nothing is marked: its frames go out with that attempt, and if it fails, rhea marks them itself.
   */
  private keepForReconnect<T extends Receiver | Sender>(link: T): T {
    const raw = this.raw as unknown as RheaInternals;
    if (raw.scheduled_reconnect === undefined && raw.socket !== undefined) return link;
    for (const endpoint of [link.session, link] as unknown as RheaEndpoint[]) {
      // Only what was opened since the drop: an older one rhea has marked already (local_open false now).
      if (endpoint.state.local_open && endpoint.state.was_open === undefined) endpoint.state.disconnected();
    }
    return link;
  }

  /** The current attempt's deadline for the broker's open (see openTimeoutMs): its socket is ended when it passes. */
  private armOpenTimer(ms: number): void {
    this.clearOpenTimer();
    if (ms <= 0) return;
    this.openTimer = setTimeout(() => {
      this.openTimer = undefined;
      if (this.connected || this.closing) return;
      // rhea then reports the attempt as lost ('disconnected') and schedules the next one.
      (this.raw as unknown as RheaInternals).socket?.destroy(new Error(`no AMQP open from the broker within ${ms} ms`));
    }, ms);
    this.openTimer.unref?.();
  }

  private clearOpenTimer(): void {
    if (this.openTimer) clearTimeout(this.openTimer);
    this.openTimer = undefined;
  }

  /**
   * Closes the connection (no reconnect); resolves when the socket is gone, forcing it after `timeoutMs`.
   * rhea only cleans up (heartbeat timers) on the socket's 'end', so we wait for that rather than destroying it.
   */
  close(timeoutMs = 5000): Promise<void> {
    if (this.closed) return Promise.resolve();
    const first = !this.closing;
    this.closing = true;
    if (first) this.emit('closed');
    this.clearOpenTimer();
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.raw.set_reconnect(false);
    const raw = this.raw as unknown as RheaInternals;
    if (raw.scheduled_reconnect) {
      clearTimeout(raw.scheduled_reconnect);
      raw.scheduled_reconnect = undefined;
    }
    const socket = raw.socket;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.closed = true;
        this.connected = false;
        if (socket && !socket.destroyed) socket.destroy();
        clearRheaTimers(raw);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      if (!socket || socket.destroyed || !this.connected) {
        // Nothing to wait for (down, or an attempt the broker has not opened yet). rhea writes its close on the next
        // tick, and arms its heartbeat timer again as it does (not unref'd: twice the idle timeout) when it still has
        // a socket that had connected: its timers are cleared after that, else a closed connection kept the process
        // alive for 32 s (the socket, ended now, never tells rhea it is gone).
        this.raw.close();
        if (socket && !socket.destroyed) socket.destroy();
        setImmediate(done);
        return;
      }
      socket.once('close', () => setImmediate(done));
      this.raw.close();
    });
  }

  /** Last fatal error seen, if any (also emitted as 'error' when someone listens). */
  lastError: Error | undefined;

  private emitError(error: Error): void {
    this.lastError = error;
    // An EventEmitter 'error' without listeners would throw and crash the process: only emit when heard.
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }

  private describeEndpoints(): string {
    const endpoints = this.provider.current().length > 0 ? this.provider.current() : this.lastTried;
    return endpoints.map((e) => `${e.host}:${e.port}`).join(', ') || 'no endpoint known yet';
  }
}

interface RheaInternals {
  socket?: import('node:net').Socket;
  local: { open: { container_id: string } };
  transport_error?: unknown;
  scheduled_reconnect?: NodeJS.Timeout;
  heartbeat_in?: NodeJS.Timeout;
  heartbeat_out?: NodeJS.Timeout;
  abort_idle?: NodeJS.Timeout;
}

/** rhea's endpoint state of a session or link (lib/endpoint.js). */
interface RheaEndpoint {
  state: { local_open: boolean; was_open?: boolean; disconnected(): void };
}

function clearRheaTimers(raw: RheaInternals): void {
  for (const key of ['scheduled_reconnect', 'heartbeat_in', 'heartbeat_out', 'abort_idle'] as const) {
    const timer = raw[key];
    if (timer) clearTimeout(timer);
    raw[key] = undefined;
  }
}

function toError(value: unknown, fallback: string): Error {
  if (value instanceof Error) return value;
  if (value && typeof value === 'object') {
    const { condition, description } = value as { condition?: string; description?: string };
    if (condition || description) return new Error(`${fallback}: ${condition ?? ''} ${description ?? ''}`.trim());
  }
  return new Error(fallback);
}

/**
 * Ends a link, and the session of its own when given, whatever the connection's state. Connected: the detach (and
 * end) that close() sends, unless it is closed already. Not connected: rhea attaches again at the reconnect every
 * link that was open when the connection dropped, one closed meanwhile included, so a subscription or a dead letter
 * listing ended during an outage came back as a consumer nobody reads (the leak hunter counted one more on the
 * broker per such close, until the process stopped). It is taken out of its session (and the session out of the
 * connection) instead: the broker ended both with the old connection.
 */
export function endLink(link: Receiver | Sender, connected: boolean, session?: Session): void {
  if (connected) {
    if (link.is_open()) link.close();
    if (session?.is_open()) session.close();
    return;
  }
  link.close();
  link.remove();
  if (session) {
    session.close();
    session.remove();
  }
}
