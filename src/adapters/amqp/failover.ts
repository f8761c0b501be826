// Failover on top of AmqpConnection: sends that survive a lost broker, the connection's state as log lines and
// metrics, and moving to brokers that join.
//
// - RetryingSender: DurableSender fails a send that was in flight when the connection dropped ('disconnected':
//   rhea forgets unsettled transfers on reconnect, no outcome would ever come). RetryingSender sends it again,
//   with the same message id, after the connection is back (on whichever broker), until the broker accepts it or
//   `retryForMs` passes: each attempt gets `sendTimeoutMs` or what is left of `retryForMs`, whichever is shorter, and
//   none starts after it. A broker `rejected` is final. The same message may thus be stored twice (the first copy
//   was stored but its `accepted` was lost with the connection): receivers dedupe on our message id.
// - Receivers need nothing here: QueueConsumer re-credits its link when rhea re-attaches it and never settles a
//   delivery of an earlier connection (the broker redelivers those).
// - instrumentConnection: one structured log line per state change and per failover, and
//   rts_amqp_connected{role} (gauge 0/1), rts_amqp_failovers_total{role} (counter: reconnects after a loss),
//   rts_amqp_failover_pause_seconds{role} (histogram: lost -> connected again).
// - rebalanceOnAdded: when discovery reports a new broker, move there with probability 1/N (N = live brokers),
//   so clients spread over the brokers without a restart; tests pass probability 1. A move that cannot happen
//   now (the connection is down) or did not get there (the new broker refused) is tried again, a few times.
//   Only to a broker that answered a probe (`ready`, the warm-up's): a move drops the connection it leaves, so
//   one to an announced broker that refuses (a wrong port) or accepts TCP and never speaks AMQP (out of heap)
//   cost a pause and redeliveries each time, up to openTimeoutMs (15 s) without any broker while the old was fine.
import { randomUUID } from 'node:crypto';
import { WakeUp } from '../../application/wake-up';
import type { MetricsRegistry } from '../metrics/registry';
import type { AmqpConnection, AmqpEndpoint } from './connection';
import { DurableSender, SendError, type DurableSenderOptions, type OutgoingMessage } from './durable-sender';
import { endpointKey, sameEndpoint, type EndpointProvider } from './endpoint-set';

/** pino-compatible: `logger.info({ ...fields }, 'message')`. Any method may be left out. */
export interface FailoverLogger {
  info?(fields: object, message: string): void;
  warn?(fields: object, message: string): void;
  error?(fields: object, message: string): void;
}

export interface RetryingSenderOptions extends DurableSenderOptions {
  /** Give up on a message after this many ms of retrying (default 120000). */
  retryForMs?: number;
  /** Pause between attempts while connected (a released/modified outcome), ms (default 200). */
  retryDelayMs?: number;
  /** Told about every retry; must not throw. */
  onRetry?: (event: { queue: string; messageId: string; attempt: number; reason: string }) => void;
}

export class RetryingSender {
  readonly inner: DurableSender;
  private readonly sendTimeoutMs: number;
  private readonly retryForMs: number;
  private readonly retryDelayMs: number;
  private closed = false;

  constructor(
    private readonly connection: AmqpConnection,
    private readonly options: RetryingSenderOptions = {},
  ) {
    // Each attempt gets sendTimeoutMs, cut to what is left of retryForMs (send); a lost connection fails it early
    // with 'disconnected'.
    this.sendTimeoutMs = options.sendTimeoutMs ?? 15000;
    this.inner = new DurableSender(connection, { sendTimeoutMs: this.sendTimeoutMs });
    this.retryForMs = options.retryForMs ?? 120000;
    this.retryDelayMs = options.retryDelayMs ?? 200;
  }

  /**
   * Sends until the broker accepted the message; resolves with the number of attempts. The message id is kept
   * across attempts (one is generated if missing). Rejects with the last SendError when not retryable or out of time:
   * never later than `retryForMs` after the call (an attempt gets no more than what is left of it).
   */
  async send(queue: string, message: OutgoingMessage): Promise<number> {
    const messageId = message.messageId ?? randomUUID();
    const fixed: OutgoingMessage = { ...message, messageId };
    const deadline = performance.now() + this.retryForMs;
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw new SendError('closed', queue);
      try {
        // An attempt that started late in the window (after a wait for the reconnect) must not hold the send open for up
        // to another sendTimeoutMs past retryForMs, and be accepted long after the outbox was told it failed.
        await this.inner.send(queue, fixed, { timeoutMs: Math.max(1, Math.min(this.sendTimeoutMs, deadline - performance.now())) });
        return attempt;
      } catch (error) {
        if (!(error instanceof SendError) || !error.retryable || this.closed || performance.now() >= deadline) throw error;
        try {
          this.options.onRetry?.({ queue, messageId, attempt, reason: error.reason });
        } catch {
          // observers must not break sending
        }
        await this.waitConnected(deadline);
        if (error.reason !== 'disconnected') await sleep(Math.min(this.retryDelayMs, Math.max(0, deadline - performance.now())));
        // The wait may end with the window (no reconnect in time): no attempt starts after it.
        if (!this.closed && performance.now() >= deadline) throw error;
      }
    }
  }

  /** Fails the sends in hand with `closed`, those waiting for a reconnect too (a broker never reached included). */
  async close(): Promise<void> {
    this.closed = true;
    this.closing.fire();
    await this.inner.close();
  }

  private reconnected: Promise<void> | undefined;
  /**
   * Ends the sends' waits for a reconnect at close(): a stop must not sit out retryForMs. A WakeUp, not a race with
   * one promise that lives as long as the sender: that kept ~312 bytes per failed send until close (wake-up.ts).
   */
  private readonly closing = new WakeUp();

  /** One shared wait for all sends failed by the same loss (not one listener per message). */
  private async waitConnected(deadline: number): Promise<void> {
    if (this.connection.isConnected()) return;
    this.reconnected ??= this.connection
      .waitConnected(this.retryForMs)
      .catch(() => undefined)
      .finally(() => {
        this.reconnected = undefined;
      });
    let timer: NodeJS.Timeout | undefined;
    await this.closing.race(Promise.race([this.reconnected, new Promise<void>((r) => (timer = setTimeout(r, Math.max(1, deadline - performance.now()))))]));
    clearTimeout(timer);
  }
}

export interface InstrumentOptions {
  /** What this connection is for: 'hub-uplink', 'sdk', 'producer'... (a fixed word, never an identifier of a person). */
  role: string;
  metrics?: MetricsRegistry;
  logger?: FailoverLogger;
  now?: () => number;
}

export interface FailoverRecord {
  role: string;
  from: string | undefined;
  to: string;
  pauseMs: number;
  at: number;
}

/**
 * Logs and measures `connection`'s state; returns a handle with the failovers seen so far and `detach()`.
 * Log lines: `amqp connected` / `amqp disconnected` / `amqp failover` with fields event, role, endpoint/from/to,
 * pauseMs, connectionCount, reconnecting, error.
 */
export function instrumentConnection(connection: AmqpConnection, options: InstrumentOptions) {
  const role = options.role;
  const now = options.now ?? Date.now;
  const gauge = options.metrics?.gauge('rts_amqp_connected', 'Whether the AMQP connection is up (1) or not (0)', ['role']);
  const failovers = options.metrics?.counter('rts_amqp_failovers_total', 'AMQP connections re-established after a loss', ['role']).zero({ role });
  const pauses = options.metrics?.histogram(
    'rts_amqp_failover_pause_seconds',
    'Time from losing the AMQP connection to being connected again',
    ['role'],
    // A failover in a broker pair takes seconds; a broker restarted (its store recovered) or down for maintenance
    // minutes: up to 10 minutes, or every such pause is only "over 30 s" (+Inf) and quantiles read 30.
    [0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 60, 120, 300, 600],
  );
  gauge?.set({ role }, connection.isConnected() ? 1 : 0);
  const records: FailoverRecord[] = [];
  let lostAt: number | undefined;
  let lostFrom: string | undefined;
  // Attempts that fail before the first connection are a start while the broker is down, not a failover.
  let everConnected = connection.isConnected();

  const onConnected = (event: { endpoint: AmqpEndpoint; connectionCount: number }) => {
    gauge?.set({ role }, 1);
    lastError = undefined;
    const to = endpointKey(event.endpoint);
    if (lostAt === undefined || !everConnected) {
      options.logger?.info?.({ event: 'amqp.connected', role, endpoint: to, connectionCount: event.connectionCount, ...(lostAt === undefined ? {} : { waitedMs: now() - lostAt }) }, 'amqp connected');
      everConnected = true;
      lostAt = undefined;
      lostFrom = undefined;
      return;
    }
    // Never negative: `now` is the wall clock, which may step back during an outage (NTP), and a negative
    // observation takes the histogram's _sum down, which Prometheus reads as a counter reset.
    const pauseMs = Math.max(0, now() - lostAt);
    const record: FailoverRecord = { role, from: lostFrom, to, pauseMs, at: now() };
    records.push(record);
    failovers?.inc({ role });
    pauses?.observe({ role }, pauseMs / 1000);
    options.logger?.info?.({ event: 'amqp.failover', role, from: lostFrom, to, pauseMs, connectionCount: event.connectionCount }, 'amqp failover');
    lostAt = undefined;
    lostFrom = undefined;
  };
  const onDisconnected = (event: { endpoint: AmqpEndpoint | undefined; error: Error | undefined; reconnecting: boolean }) => {
    gauge?.set({ role }, 0);
    const endpoint = event.endpoint ? endpointKey(event.endpoint) : undefined;
    // Failed attempts while already down do not restart the pause.
    if (lostAt === undefined) {
      lostAt = now();
      lostFrom = endpoint;
      options.logger?.warn?.(
        { event: 'amqp.disconnected', role, endpoint, reconnecting: event.reconnecting, error: event.error?.message },
        'amqp disconnected',
      );
    }
  };
  // The same error again on every attempt while down (a broker refusing the login, say) is one line, not one per try.
  let lastError: string | undefined;
  const onError = (error: Error) => {
    if (error.message === lastError) return;
    lastError = error.message;
    options.logger?.error?.({ event: 'amqp.error', role, error: error.message }, 'amqp connection error');
  };
  connection.on('connected', onConnected);
  connection.on('disconnected', onDisconnected);
  connection.on('error', onError);
  return {
    failovers: records as readonly FailoverRecord[],
    detach(): void {
      connection.off('connected', onConnected);
      connection.off('disconnected', onDisconnected);
      connection.off('error', onError);
    },
  };
}

export interface RebalanceOptions {
  /** Chance to move when a broker is added; default 1/N with N the live brokers after the addition. */
  probability?: (liveCount: number) => number;
  /** Wait this long (ms, random up to) before moving, so clients do not all move on the same tick (default 1000). */
  maxDelayMs?: number;
  /** A move that ended on another broker (the new one refused or was too slow) is tried again after this, ms (default 2000). */
  retryDelayMs?: number;
  /** Moves to one broker tried at most this many times (default 3); a probe that failed counts as one. */
  maxAttempts?: number;
  /** Whether a broker answers (WarmUp.ready); asked before each move, which happens only on true. Default: all do. */
  ready?: (endpoint: AmqpEndpoint) => Promise<boolean>;
  logger?: FailoverLogger;
  role?: string;
  random?: () => number;
}

/** What rebalanceOnAdded needs of a connection (AmqpConnection has it). */
export type RebalanceableConnection = Pick<AmqpConnection, 'moveTo' | 'endpoint' | 'isConnected' | 'on' | 'off'>;

/**
 * Moves `connection` to brokers that join `provider` (see the header); returns the unsubscribe function.
 *
 * The broker to move to is kept as a target until the connection is on it, the broker leaves the live set, or
 * `maxAttempts` moves have not got there. A target that shows up while the connection is down (mid-failover, or
 * moving to the previous target) waits for it to be connected; a move that ends on another broker is tried again
 * after `retryDelayMs`. A later addition replaces the target.
 */
export function rebalanceOnAdded(connection: RebalanceableConnection, provider: EndpointProvider, options: RebalanceOptions = {}): () => void {
  const random = options.random ?? Math.random;
  const retryDelayMs = options.retryDelayMs ?? 2000;
  const maxAttempts = Math.max(1, options.maxAttempts ?? 3);
  let target: { endpoint: AmqpEndpoint; attempts: number } | undefined;
  let timer: NodeJS.Timeout | undefined;
  const schedule = (ms: number) => {
    clearTimeout(timer);
    timer = setTimeout(attempt, ms);
  };
  // The target whose `ready` answer is awaited: the move waits for it.
  let probing: typeof target;
  let stopped = false;
  /** Whether the connection should move to the target now (false: not now, or never and the target is dropped). */
  const due = (): boolean => {
    if (!target) return false;
    const { endpoint } = target;
    if (!provider.current().some((e) => sameEndpoint(e, endpoint))) {
      target = undefined;
      return false;
    }
    // Down: the next 'connected' decides (it may even land there).
    if (!connection.isConnected()) return false;
    if (sameEndpoint(connection.endpoint(), endpoint)) {
      target = undefined;
      return false;
    }
    if (target.attempts >= maxAttempts) {
      abandon(target);
      return false;
    }
    return true;
  };
  const abandon = (given: NonNullable<typeof target>) => {
    options.logger?.warn?.(
      { event: 'amqp.rebalance.abandoned', role: options.role, to: endpointKey(given.endpoint), attempts: given.attempts },
      'amqp gave up moving to a new broker',
    );
    target = undefined;
  };
  const move = () => {
    if (!target || !due()) return;
    const { endpoint } = target;
    const from = connection.endpoint();
    if (connection.moveTo(endpoint)) {
      target.attempts += 1;
      options.logger?.info?.(
        { event: 'amqp.rebalance', role: options.role, from: from ? endpointKey(from) : undefined, to: endpointKey(endpoint), attempt: target.attempts },
        'amqp moving to a new broker',
      );
    }
  };
  const attempt = () => {
    timer = undefined;
    if (!target || probing === target || !due()) return;
    if (!options.ready) return move();
    const asked = target;
    probing = asked;
    options.ready(asked.endpoint).then(
      (ok) => answered(asked, ok),
      () => answered(asked, false),
    );
  };
  const answered = (asked: NonNullable<typeof target>, ok: boolean) => {
    if (probing === asked) probing = undefined;
    // Stopped, or a later addition replaced the target meanwhile.
    if (stopped || target !== asked) return;
    if (ok) return move();
    asked.attempts += 1;
    options.logger?.info?.(
      { event: 'amqp.rebalance.skipped', role: options.role, to: endpointKey(asked.endpoint), attempt: asked.attempts },
      'amqp not moving: the new broker did not answer',
    );
    if (asked.attempts >= maxAttempts) abandon(asked);
    else schedule(retryDelayMs);
  };
  const onConnected = (event: { endpoint: AmqpEndpoint }) => {
    if (!target) return;
    if (sameEndpoint(event.endpoint, target.endpoint)) {
      clearTimeout(timer);
      timer = undefined;
      target = undefined;
      return;
    }
    // Not there: after a failed move, wait before the next; a target that came while down, soon.
    schedule(target.attempts > 0 ? retryDelayMs : Math.floor(random() * (options.maxDelayMs ?? 1000)));
  };
  connection.on('connected', onConnected);
  const unsubscribe = provider.subscribe((change) => {
    if (change.kind !== 'added') return;
    const live = provider.current().length;
    const p = options.probability ? options.probability(live) : 1 / Math.max(1, live);
    if (random() >= p) return;
    target = { endpoint: { host: change.endpoint.host, port: change.endpoint.port }, attempts: 0 };
    schedule(Math.floor(random() * (options.maxDelayMs ?? 1000)));
  });
  return () => {
    stopped = true;
    unsubscribe();
    connection.off('connected', onConnected);
    clearTimeout(timer);
    timer = undefined;
    target = undefined;
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
