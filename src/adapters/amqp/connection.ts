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
import { EventEmitter } from 'node:events';
import {
  create_container,
  type Connection,
  type ConnectionOptions,
  type EventContext,
  type Receiver,
  type ReceiverOptions,
  type Sender,
  type SenderOptions,
} from 'rhea';

export interface AmqpEndpoint {
  host: string;
  port: number;
}

/**
 * How the client authenticates.
 * - `none`: no SASL layer (ActiveMQ needs `wireFormat.allowNonSaslConnections=true` on the connector).
 * - `anonymous`: SASL ANONYMOUS.
 * - `plain`: SASL PLAIN with username and password.
 */
export type AmqpSasl = { mechanism: 'none' } | { mechanism: 'anonymous' } | { mechanism: 'plain'; username: string; password: string };

export interface AmqpConnectionOptions {
  /** Brokers to try, in order; every failed or lost connection moves on to the next one. */
  endpoints: readonly AmqpEndpoint[];
  sasl?: AmqpSasl;
  /** AMQP container id (shows up in broker logs); default `rts-<random>`. */
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
  /** Remote close conditions after which we still reconnect. */
  nonFatalErrors?: readonly string[];
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
}

export const DEFAULT_NON_FATAL_ERRORS: readonly string[] = [
  'amqp:connection:forced',
  'amqp:internal-error',
  'amqp:resource-limit-exceeded',
];

let containerCounter = 0;

export class AmqpConnection extends EventEmitter<AmqpConnectionEvents> {
  /** The underlying rhea connection, for links not covered by this layer. */
  readonly raw: Connection;
  private readonly endpoints: readonly AmqpEndpoint[];
  private attempts = 0;
  private current: AmqpEndpoint | undefined;
  private connected = false;
  private connectionCount = 0;
  private closing = false;
  private closed = false;

  private constructor(options: AmqpConnectionOptions) {
    super();
    if (options.endpoints.length === 0) throw new Error('AmqpConnection: at least one endpoint is required');
    this.endpoints = [...options.endpoints];
    const container = create_container({
      id: options.containerId ?? `rts-${process.pid}-${++containerCounter}-${Math.random().toString(36).slice(2, 8)}`,
    });
    const sasl = options.sasl ?? { mechanism: 'none' };
    const connectionOptions: ConnectionOptions = {
      host: this.endpoints[0]!.host,
      port: this.endpoints[0]!.port,
      reconnect: options.reconnect ?? true,
      initial_reconnect_delay: options.initialReconnectDelayMs ?? 100,
      max_reconnect_delay: options.maxReconnectDelayMs ?? 2000,
      idle_time_out: options.idleTimeoutMs ?? 16000,
      non_fatal_errors: [...(options.nonFatalErrors ?? DEFAULT_NON_FATAL_ERRORS)],
      // Rotate on every attempt: rhea passes the count of *successes*, which does not move on a failed attempt.
      connection_details: () => {
        const endpoint = this.endpoints[this.attempts++ % this.endpoints.length]!;
        this.current = endpoint;
        return { host: endpoint.host, port: endpoint.port, transport: 'tcp' };
      },
    };
    if (options.reconnectLimit !== undefined) connectionOptions.reconnect_limit = options.reconnectLimit;
    if (sasl.mechanism === 'anonymous') connectionOptions.username = 'anonymous';
    if (sasl.mechanism === 'plain') {
      connectionOptions.username = sasl.username;
      connectionOptions.password = sasl.password;
    }
    this.raw = container.create_connection(connectionOptions);
    this.raw.on('connection_open', () => {
      this.connected = true;
      this.connectionCount += 1;
      // Next failure starts from the endpoint after this one.
      this.emit('connected', { endpoint: this.current!, connectionCount: this.connectionCount });
    });
    this.raw.on('disconnected', (context: EventContext) => {
      this.connected = false;
      const error = context.error instanceof Error ? context.error : context.error ? new Error(String(context.error)) : undefined;
      this.emit('disconnected', {
        endpoint: this.current,
        error,
        reconnecting: Boolean(context.reconnecting) && !this.closing,
      });
    });
    this.raw.on('connection_error', (context: EventContext) => {
      // Remote close with an error; whether rhea reconnects depends on the non-fatal list.
      const condition = (this.raw.error as { condition?: string } | undefined)?.condition;
      if (condition !== undefined && !(options.nonFatalErrors ?? DEFAULT_NON_FATAL_ERRORS).includes(condition)) {
        this.emitError(toError(context.error ?? this.raw.error, 'AMQP connection closed by peer'));
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
  }

  /** Creates the connection and starts connecting (resolve readiness with `waitConnected`). */
  static open(options: AmqpConnectionOptions): AmqpConnection {
    const connection = new AmqpConnection(options);
    connection.raw.connect();
    return connection;
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
      };
      const onConnected = () => {
        cleanup();
        resolve();
      };
      const onError = (error: Error) => {
        cleanup();
        reject(error);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`AMQP connection not established within ${timeoutMs} ms (${this.describeEndpoints()})`));
      }, timeoutMs);
      this.on('connected', onConnected);
      this.on('error', onError);
    });
  }

  openSender(options: SenderOptions): Sender {
    return this.raw.open_sender(options);
  }

  openReceiver(options: ReceiverOptions): Receiver {
    return this.raw.open_receiver(options);
  }

  /**
   * Closes the connection (no reconnect); resolves when the socket is gone, forcing it after `timeoutMs`.
   * rhea only cleans up (heartbeat timers) on the socket's 'end', so we wait for that rather than destroying it.
   */
  close(timeoutMs = 5000): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closing = true;
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
        this.raw.close();
        done();
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
    return this.endpoints.map((e) => `${e.host}:${e.port}`).join(', ');
  }
}

interface RheaInternals {
  socket?: import('node:net').Socket;
  scheduled_reconnect?: NodeJS.Timeout;
  heartbeat_in?: NodeJS.Timeout;
  heartbeat_out?: NodeJS.Timeout;
  abort_idle?: NodeJS.Timeout;
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
