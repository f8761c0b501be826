// Touch a broker as soon as discovery reports it: one short AMQP connection (open, then close), so the first
// real connection after a failover does not pay for the broker's cold AMQP transport.
//
// Why: a slave that has just taken over (and a node started at runtime) has never served an AMQP connection; on
// ActiveMQ 5.18 the first one waits 200-400 ms for the broker's protocol header while the broker also re-forms its
// network bridges (measured with rhea:io in bench/failover.js), where the OpenWire side is already warm from the
// bridges. Probing when the broker is announced moves that cost out of the failover pause. One probe per added
// broker per client, with a random delay up to `spreadMs` so a fleet of clients does not arrive at once.
//
// The probe's answer is also what rebalanceOnAdded moves on (`ready`): a broker announced on a wrong port, or one
// that accepts TCP but never speaks AMQP (out of heap, still announcing), must not take a good connection away.
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

export interface WarmUp {
  /**
   * Whether `endpoint` answers AMQP: the warm-up probe of its announcement the first time it is asked (waiting
   * for it if it has not ended), a probe of its own after that. False once stopped.
   */
  ready(endpoint: AmqpEndpoint): Promise<boolean>;
  stop(): void;
}

/** Probes every broker `provider` adds. */
export function warmUpOnAdded(provider: EndpointProvider, options: WarmUpOptions = {}): WarmUp {
  // Probes waiting for their spread delay, with what settles them.
  const timers = new Map<NodeJS.Timeout, (ok: boolean) => void>();
  const random = options.random ?? Math.random;
  // The announcement's probe (started or still waiting for its spread delay), until `ready` takes it.
  const probes = new Map<string, Promise<boolean>>();
  let stopped = false;
  const unsubscribe = provider.subscribe((change) => {
    const key = endpointKey(change.endpoint);
    if (change.kind !== 'added' || stopped) {
      probes.delete(key);
      return;
    }
    probes.set(
      key,
      new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          timers.delete(timer);
          void probe(change.endpoint, options).then(resolve);
        }, Math.floor(random() * (options.spreadMs ?? 300)));
        timers.set(timer, resolve);
      }),
    );
  });
  return {
    ready: (endpoint) => {
      if (stopped) return Promise.resolve(false);
      const key = endpointKey(endpoint);
      const announced = probes.get(key);
      probes.delete(key);
      return announced ?? probe(endpoint, options);
    },
    stop: () => {
      stopped = true;
      unsubscribe();
      for (const [timer, resolve] of timers) {
        clearTimeout(timer);
        resolve(false);
      }
      timers.clear();
      probes.clear();
    },
  };
}

function probe(endpoint: AmqpEndpoint, options: WarmUpOptions): Promise<boolean> {
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
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), options.timeoutMs ?? 3000);
    connection.on('connection_open', () => finish(true));
    connection.on('connection_error', () => finish(false));
    connection.on('connection_close', () => undefined);
    connection.on('disconnected', () => finish(false));
    connection.on('error', () => finish(false));
  });
}
