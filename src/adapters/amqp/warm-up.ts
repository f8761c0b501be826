// Touch a broker as soon as discovery reports it: one short AMQP connection (open, then close), so the first
// real connection after a failover does not pay for the broker's cold AMQP transport.
//
// Why: a slave that has just taken over (and a node started at runtime) has never served an AMQP connection; on
// ActiveMQ 5.18 the first one waits 200-400 ms for the broker's protocol header while the broker also re-forms its
// network bridges (measured with rhea:io in bench/failover.js), where the OpenWire side is already warm from the
// bridges. Probing when the broker is announced moves that cost out of the failover pause. One probe per added
// broker per client, with a random delay up to `spreadMs` so a fleet of clients does not arrive at once.
import { create_container, type ConnectionOptions } from 'rhea';
import { transportOf, type AmqpEndpoint, type AmqpSasl, type AmqpTls } from './connection';
import { endpointKey, type EndpointProvider } from './endpoint-set';

export interface WarmUpOptions {
  sasl?: AmqpSasl;
  /** For TLS endpoints (see AmqpConnectionOptions.tls). */
  tls?: AmqpTls;
  /** Give up on a probe after this long (default 3000 ms). */
  timeoutMs?: number;
  /** Random delay before probing, up to (default 300 ms). */
  spreadMs?: number;
  onProbe?: (event: { endpoint: string; ok: boolean; ms: number }) => void;
  random?: () => number;
}

/** Probes every broker `provider` adds; returns the stop function. */
export function warmUpOnAdded(provider: EndpointProvider, options: WarmUpOptions = {}): () => void {
  const timers = new Set<NodeJS.Timeout>();
  const random = options.random ?? Math.random;
  let stopped = false;
  const unsubscribe = provider.subscribe((change) => {
    if (change.kind !== 'added' || stopped) return;
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!stopped) void probe(change.endpoint, options);
    }, Math.floor(random() * (options.spreadMs ?? 300)));
    timers.add(timer);
  });
  return () => {
    stopped = true;
    unsubscribe();
    for (const t of timers) clearTimeout(t);
    timers.clear();
  };
}

function probe(endpoint: AmqpEndpoint, options: WarmUpOptions): Promise<void> {
  const { host, port } = endpoint;
  const started = performance.now();
  const container = create_container({ id: `rts-warmup-${process.pid}-${Math.random().toString(36).slice(2, 8)}` });
  const sasl = options.sasl ?? { mechanism: 'none' };
  // rhea's own connect (no connection_details) hands its options to tls.connect as they are.
  const transport = transportOf(endpoint, options.tls);
  const connectionOptions = {
    ...(transport.transport === 'tls' ? { ...transport.options, transport: 'tls' } : {}),
    host,
    port,
    reconnect: false,
    idle_time_out: 0,
  } as ConnectionOptions;
  if (sasl.mechanism === 'anonymous') connectionOptions.username = 'anonymous';
  if (sasl.mechanism === 'plain') {
    connectionOptions.username = sasl.username;
    connectionOptions.password = sasl.password;
  }
  return new Promise((resolve) => {
    let done = false;
    const connection = container.connect(connectionOptions);
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try {
        options.onProbe?.({ endpoint: endpointKey({ host, port }), ok, ms: Math.round(performance.now() - started) });
      } catch {
        // observers must not throw
      }
      try {
        if (ok) connection.close();
        else (connection as unknown as { socket?: { destroy(): void } }).socket?.destroy();
      } catch {
        // already gone
      }
      resolve();
    };
    const timer = setTimeout(() => finish(false), options.timeoutMs ?? 3000);
    connection.on('connection_open', () => finish(true));
    connection.on('connection_error', () => finish(false));
    connection.on('connection_close', () => undefined);
    connection.on('disconnected', () => finish(false));
    connection.on('error', () => finish(false));
  });
}
