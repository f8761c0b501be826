// The SDK's `discovery` option: find the hub's brokers by ActiveMQ's multicast announcements instead of (or
// besides) a static URL list, the same way the hub does (adapters/amqp/discovery-provider.ts).
//
//   await RtsClient.connect({ systemId: 'city-a', discovery: 'multicast://239.255.2.3:6155?group=rts&interface=10.0.0.5' });
//   await RtsClient.connect({ systemId: 'city-a', discovery: 'multicast://default', url: 'failover:(amqp://mq-1:5672)' });
//
// With a URL list too, live brokers are tried first, then the listed ones. `rebalance` in the URI (auto: move to
// a broker that joins with probability 1/N; always; off) spreads systems over brokers added at runtime.
// Also accepted: an EndpointProvider of your own (e.g. a MulticastDiscovery you started; you stop it).
import type { AmqpConnection, AmqpEndpoint } from '../adapters/amqp/connection';
import { openEndpointProvider, parseDiscoveryUri, rebalanceProbability, type DiscoverySettings } from '../adapters/amqp/discovery-provider';
import { endpointKey, type EndpointProvider } from '../adapters/amqp/endpoint-set';
import { rebalanceOnAdded } from '../adapters/amqp/failover';
import { warmUpOnAdded } from '../adapters/amqp/warm-up';
import type { AmqpSasl, AmqpTls } from '../adapters/amqp/connection';

export type DiscoveryOption = string | DiscoverySettings | EndpointProvider;

export interface SdkDiscovery {
  provider: EndpointProvider;
  /** Moves the connection to brokers that join (per the URI's `rebalance`); returns the stop function. */
  attach(connection: AmqpConnection, log: (fields: object, message: string) => void): void;
  stop(): Promise<void>;
}

const isProvider = (value: unknown): value is EndpointProvider =>
  typeof value === 'object' && value !== null && typeof (value as EndpointProvider).current === 'function' && typeof (value as EndpointProvider).subscribe === 'function';

/** Opens the discovery listener (or wraps a given provider); `endpoints` (from `url`/`endpoints`) are offered too. */
export async function openSdkDiscovery(
  option: DiscoveryOption,
  endpoints: readonly AmqpEndpoint[],
  log: (fields: object, message: string) => void,
  sasl?: AmqpSasl,
  tls?: AmqpTls,
): Promise<SdkDiscovery> {
  if (isProvider(option)) {
    return { provider: option, attach: () => undefined, stop: async () => undefined };
  }
  let settings: DiscoverySettings;
  try {
    settings = typeof option === 'string' ? parseDiscoveryUri(option) : option;
  } catch (error) {
    throw new TypeError(`RtsClient: ${(error as Error).message}`);
  }
  const opened = await openEndpointProvider(settings, endpoints.length > 0 ? endpoints : undefined, {
    onChange: (change) => log({ event: 'amqp.discovery', kind: change.kind, endpoint: endpointKey(change.endpoint), reason: change.reason }, change.kind === 'added' ? 'broker discovered' : 'broker gone from the live set'),
  });
  let stopRebalance: () => void = () => undefined;
  // One short probe per broker announced (a just-promoted master answers its first AMQP connection slowly).
  // Its answer is also what a move to it waits for: the client moves only to a broker that answered.
  const warmUp = warmUpOnAdded(opened.provider, { ...(sasl ? { sasl } : {}), ...(tls ? { tls } : {}) });
  return {
    provider: opened.provider,
    attach: (connection, logInfo) => {
      const probability = rebalanceProbability(settings.rebalance);
      if (probability) stopRebalance = rebalanceOnAdded(connection, opened.provider, { probability, ready: warmUp.ready, role: 'sdk', logger: { info: logInfo } });
    },
    stop: async () => {
      stopRebalance();
      warmUp.stop();
      await opened.stop();
    },
  };
}
