// The hub's broker connection, composed for high availability (issue 6):
//
// - where: RTS_BROKER_DISCOVERY (multicast, see adapters/amqp/discovery-provider.ts) and/or RTS_BROKER_URL (a
//   static list); with both, live brokers first, then the static ones.
// - failover: AmqpConnection with jittered backoff across them; instrumented (role 'hub'): `amqp.connected`,
//   `amqp.disconnected`, `amqp.failover` log lines with from/to/pauseMs, and rts_amqp_connected /
//   rts_amqp_failovers_total / rts_amqp_failover_pause_seconds; every discovery change is an `amqp.discovery` line.
// - brokers that join: rebalanceOnAdded (the discovery URI's `rebalance`: auto = 1/N, always, off), and one warm-up
//   probe each (warm-up.ts: a just-promoted master answers its first AMQP connection slowly).
// - the hub's own sends survive a failover: the downlink outbox sends through RetryingSender, dead-letter copies
//   and replays through RetryingDurableSender; an unaccepted send goes again after the reconnect with the same
//   message id (receivers dedupe on it). The uplink consumer needs nothing here: QueueConsumer drops handler
//   results of a lost connection's deliveries (never settles on a dead connection); the broker redelivers them.
//
//   const broker = await openHubBroker(messaging, { logger, metrics });
//   await broker.connection.waitConnected(30000);
//   broker.downlinkSender(); broker.replaySender(); broker.onUplinkOutcome(event);
//   await broker.close();
import type { Logger } from 'pino';
import { AmqpConnection } from '../adapters/amqp/connection';

/** A broker that refuses the hub's login is asked again this often: its accounts may be fixed while the hub runs. */
export const REFUSED_LOGIN_RETRY_MS = 10_000;
/** A broker that closed the hub's connection with a condition we do not reconnect after at once: asked again this late. */
export const FATAL_CLOSE_RETRY_MS = 10_000;
import { openEndpointProvider, rebalanceProbability, type OpenedEndpoints } from '../adapters/amqp/discovery-provider';
import { endpointKey } from '../adapters/amqp/endpoint-set';
import { RetryingSender, instrumentConnection, rebalanceOnAdded } from '../adapters/amqp/failover';
import type { OutgoingMessage } from '../adapters/amqp/durable-sender';
import type { ConsumerOutcomeEvent } from '../adapters/amqp/queue-consumer';
import { RetryingDurableSender } from '../adapters/amqp/retrying-durable-sender';
import { warmUpOnAdded } from '../adapters/amqp/warm-up';
import { sendRetryRecorder, uplinkOutcomeRecorder } from '../adapters/metrics/hub-metrics';
import type { MetricsRegistry } from '../adapters/metrics/registry';
import type { MessagingConfig } from './config';

export type HubBrokerOptions = Readonly<{
  logger: Logger;
  metrics?: MetricsRegistry | undefined;
  /** How long a send is retried across failovers before the caller sees the failure (default 120000 ms). */
  retryForMs?: number;
}>;

export type DownlinkSender = Readonly<{
  send(queue: string, message: OutgoingMessage): Promise<void>;
  close(): Promise<void>;
  retrying: RetryingSender;
}>;

export type HubBroker = Readonly<{
  connection: AmqpConnection;
  endpoints: OpenedEndpoints;
  /** For the downlink outbox: resends across failovers (RetryingSender), resolves once accepted. */
  downlinkSender(): DownlinkSender;
  /** For dead-letter replays and operator sends (DurableSender-typed callers). */
  replaySender(): RetryingDurableSender;
  /** The uplink consumer's outcome observer (metrics). */
  onUplinkOutcome(event: ConsumerOutcomeEvent): void;
  describe(): string;
  close(): Promise<void>;
}>;

export const openHubBroker = async (messaging: MessagingConfig, options: HubBrokerOptions): Promise<HubBroker> => {
  const log = options.logger;
  const discovery = messaging.discovery;
  const endpoints = await openEndpointProvider(discovery, messaging.endpoints.length > 0 ? messaging.endpoints : undefined, {
    onChange: (change) =>
      log.info(
        { event: 'amqp.discovery', role: 'hub', kind: change.kind, endpoint: endpointKey(change.endpoint), reason: change.reason },
        change.kind === 'added' ? 'broker discovered' : 'broker gone from the live set',
      ),
  });
  if (endpoints.settings) log.info({ event: 'amqp.discovery.listening', discovery: endpoints.describe() }, 'listening for broker announcements');
  const connection = AmqpConnection.open({
    endpointProvider: endpoints.provider,
    sasl: messaging.sasl,
    ...(messaging.tls ? { tls: messaging.tls } : {}),
    containerId: `rts-hub-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
    initialReconnectDelayMs: 50,
    maxReconnectDelayMs: 1000,
    // Heartbeats find a half-open connection (a broker host gone without a FIN) within a few seconds.
    idleTimeoutMs: 8000,
    retryRefusedLoginMs: REFUSED_LOGIN_RETRY_MS,
    retryFatalCloseMs: FATAL_CLOSE_RETRY_MS,
    // A static list alone keeps its order (primary first); discovered brokers spread the hubs.
    startAt: endpoints.settings ? 'random' : 'first',
  });
  const monitor = instrumentConnection(connection, { role: 'hub', metrics: options.metrics, logger: log });
  const probability = endpoints.settings ? rebalanceProbability(endpoints.settings.rebalance) : undefined;
  // A broker that was just announced gets one short probe, so a failover to it does not meet a cold AMQP transport.
  // Its answer is also what a move to it waits for: the hub moves only to a broker that answered.
  const warmUp = warmUpOnAdded(endpoints.provider, { sasl: messaging.sasl, ...(messaging.tls ? { tls: messaging.tls } : {}) });
  const stopRebalance = probability ? rebalanceOnAdded(connection, endpoints.provider, { probability, ready: warmUp.ready, role: 'hub', logger: log }) : () => undefined;
  const retryForMs = options.retryForMs ?? 120_000;
  const senders: Array<{ close(): Promise<void> }> = [];
  const downlinkRetry = sendRetryRecorder(options.metrics, 'downlink');
  const replayRetry = sendRetryRecorder(options.metrics, 'replay');
  const outcome = uplinkOutcomeRecorder(options.metrics);
  let closing: Promise<void> | null = null;
  return {
    connection,
    endpoints,
    downlinkSender: () => {
      const sender = new RetryingSender(connection, { retryForMs, onRetry: downlinkRetry });
      senders.push(sender);
      return { send: async (queue, message) => void (await sender.send(queue, message)), close: () => sender.close(), retrying: sender };
    },
    replaySender: () => {
      const sender = new RetryingDurableSender(connection, { retryForMs, onRetry: replayRetry });
      senders.push(sender);
      return sender;
    },
    onUplinkOutcome: outcome,
    describe: () => endpoints.describe(),
    close: () =>
      (closing ??= (async () => {
        stopRebalance();
        warmUp.stop();
        for (const sender of senders) await sender.close().catch(() => undefined);
        await connection.close();
        monitor.detach();
        await endpoints.stop();
      })()),
  };
};
