// Where a client finds its brokers, from configuration: a discovery URI (multicast), a static list, or both.
//
//   multicast://239.255.2.3:6155?group=rts&interface=10.0.0.5      address, port, group, interface address
//   multicast://default                                            ActiveMQ's form: 239.255.2.3:6155, group "default"
//   multicast://239.255.2.3:6155?group=rts&networkInterface=eth1   ActiveMQ's parameter: the interface by name
//
// Parameters: group (default "default"), interface (IPv4 address to join on) or networkInterface /
// joinNetworkInterface (interface name, resolved to its IPv4 address), expiryMs (a silent broker is gone after;
// default 5000), rebalance (what to do when a broker joins: auto = move with probability 1/N, always, off;
// default auto). Unknown parameters are refused, so a typo does not silently change the cluster.
//
// With discovery and a static list together, both are offered: live brokers first, then the static ones
// (complementary: the static list still works while multicast is down). `openEndpointProvider` starts the
// listener; `stop()` closes it.
import { networkInterfaces } from 'node:os';
import type { AmqpEndpoint } from './connection';
import {
  DEFAULT_DISCOVERY_ADDRESS,
  DEFAULT_DISCOVERY_EXPIRY_MS,
  DEFAULT_DISCOVERY_GROUP,
  DEFAULT_DISCOVERY_PORT,
  MulticastDiscovery,
  type LiveSetChange,
} from './discovery';
import { StaticEndpoints, endpointKey, sameEndpoint, type EndpointChange, type EndpointProvider } from './endpoint-set';

export type RebalanceMode = 'auto' | 'always' | 'off';

export interface DiscoverySettings {
  address: string;
  port: number;
  group: string;
  /** IPv4 address of the interface the group is joined on; undefined = the system's choice. */
  interfaceAddress: string | undefined;
  /** The interface name as configured (networkInterface=), for logs. */
  interfaceName: string | undefined;
  expiryMs: number;
  rebalance: RebalanceMode;
}

const MULTICAST_V4 = /^2(2[4-9]|3\d)\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;
const IPV4 = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;
const KNOWN = new Set(['group', 'interface', 'networkInterface', 'joinNetworkInterface', 'expiryMs', 'rebalance']);

/**
 * Parses a discovery URI (see the file comment). Throws an Error saying what is wrong. `lookupInterface` maps an
 * interface name to its IPv4 address (default: os.networkInterfaces()).
 */
export function parseDiscoveryUri(text: string, lookupInterface: (name: string) => string | undefined = interfaceAddressOf): DiscoverySettings {
  const trimmed = text.trim();
  const m = /^multicast:\/\/([^/?#]*)(?:\/)?(?:\?([^#]*))?$/i.exec(trimmed);
  if (!m) throw new Error('a discovery URI is multicast://address:port?group=name (or multicast://default)');
  const authority = m[1] ?? '';
  let address = DEFAULT_DISCOVERY_ADDRESS;
  let port = DEFAULT_DISCOVERY_PORT;
  if (authority !== '' && authority.toLowerCase() !== 'default') {
    const hp = /^([^:]+)(?::(\d+))?$/.exec(authority);
    if (!hp) throw new Error('discovery: address must be host[:port]');
    address = hp[1]!;
    if (hp[2] !== undefined) port = Number(hp[2]);
    if (!MULTICAST_V4.test(address)) throw new Error('discovery: the address must be an IPv4 multicast address (224.0.0.0-239.255.255.255)');
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error('discovery: port out of range');
  }
  const params = new URLSearchParams(m[2] ?? '');
  for (const key of params.keys()) if (!KNOWN.has(key)) throw new Error(`discovery: unknown parameter "${key}" (known: ${[...KNOWN].join(', ')})`);
  const group = params.get('group') ?? DEFAULT_DISCOVERY_GROUP;
  if (!/^[A-Za-z0-9_.-]{1,100}$/.test(group)) throw new Error('discovery: group must be letters, digits, _ . - (at most 100)');
  let interfaceAddress: string | undefined;
  let interfaceName: string | undefined;
  const ip = params.get('interface');
  if (ip !== null) {
    if (!IPV4.test(ip)) throw new Error('discovery: interface must be an IPv4 address (or use networkInterface=<name>)');
    interfaceAddress = ip;
  } else {
    const name = params.get('joinNetworkInterface') ?? params.get('networkInterface');
    if (name !== null) {
      if (!/^[A-Za-z0-9_.:-]{1,32}$/.test(name)) throw new Error('discovery: networkInterface must be an interface name');
      interfaceName = name;
      interfaceAddress = lookupInterface(name);
      if (interfaceAddress === undefined) throw new Error(`discovery: network interface "${name}" has no IPv4 address here`);
    }
  }
  const expiryText = params.get('expiryMs');
  const expiryMs = expiryText === null ? DEFAULT_DISCOVERY_EXPIRY_MS : Number(expiryText);
  if (!Number.isInteger(expiryMs) || expiryMs < 1000 || expiryMs > 60000) throw new Error('discovery: expiryMs must be 1000-60000');
  const rebalance = (params.get('rebalance') ?? 'auto') as RebalanceMode;
  if (!['auto', 'always', 'off'].includes(rebalance)) throw new Error('discovery: rebalance must be auto, always or off');
  return { address, port, group, interfaceAddress, interfaceName, expiryMs, rebalance };
}

export function interfaceAddressOf(name: string): string | undefined {
  return networkInterfaces()[name]?.find((a) => a.family === 'IPv4')?.address;
}

/** For logs: never more than address, port, group and interface. */
export function describeDiscovery(settings: DiscoverySettings): string {
  const where = settings.interfaceAddress ? ` on ${settings.interfaceName ?? settings.interfaceAddress}` : '';
  return `multicast ${settings.address}:${settings.port} group ${settings.group}${where}`;
}

/** Discovered endpoints first, then the static ones not already among them; changes of the discovered part are passed on. */
export class UnionEndpoints implements EndpointProvider {
  constructor(
    private readonly discovered: EndpointProvider,
    private readonly fixed: readonly AmqpEndpoint[],
  ) {}
  current(): readonly AmqpEndpoint[] {
    const live = this.discovered.current();
    return [...live, ...this.fixed.filter((e) => !live.some((l) => sameEndpoint(l, e)))];
  }
  subscribe(listener: (change: EndpointChange) => void): () => void {
    return this.discovered.subscribe((change) => {
      // A static endpoint stays offered when discovery drops it.
      if (change.kind === 'removed' && this.fixed.some((e) => sameEndpoint(e, change.endpoint))) return;
      listener(change);
    });
  }
}

export interface OpenedEndpoints {
  provider: EndpointProvider;
  /** The multicast listener, when discovery is on. */
  discovery: MulticastDiscovery | undefined;
  settings: DiscoverySettings | undefined;
  describe(): string;
  stop(): Promise<void>;
}

export interface OpenEndpointsOptions {
  /** Told about every discovery change (a log line per change). */
  onChange?: (change: LiveSetChange) => void;
  /** Wait up to this long for the first broker to be discovered (default 0: do not wait). */
  waitForFirstMs?: number;
}

/** A provider for AmqpConnection from a discovery URI and/or a static list (at least one of them). */
export async function openEndpointProvider(
  discovery: string | DiscoverySettings | undefined,
  endpoints: readonly AmqpEndpoint[] | undefined,
  options: OpenEndpointsOptions = {},
): Promise<OpenedEndpoints> {
  const fixed = endpoints ?? [];
  if (discovery === undefined) {
    const provider = new StaticEndpoints(fixed);
    return { provider, discovery: undefined, settings: undefined, describe: () => fixed.map(endpointKey).join(','), stop: async () => undefined };
  }
  const settings = typeof discovery === 'string' ? parseDiscoveryUri(discovery) : discovery;
  const listener = new MulticastDiscovery({
    address: settings.address,
    port: settings.port,
    group: settings.group,
    expiryMs: settings.expiryMs,
    ...(settings.interfaceAddress !== undefined ? { interfaceAddress: settings.interfaceAddress } : {}),
  });
  if (options.onChange) {
    listener.on('added', options.onChange);
    listener.on('removed', options.onChange);
  }
  listener.on('error', () => undefined);
  await listener.start();
  const provider: EndpointProvider = fixed.length > 0 ? new UnionEndpoints(listener, fixed) : listener;
  if (options.waitForFirstMs && options.waitForFirstMs > 0 && fixed.length === 0) {
    await listener.waitFor((e) => e.length > 0, options.waitForFirstMs).catch(() => undefined);
  }
  return {
    provider,
    discovery: listener,
    settings,
    describe: () => {
      const live = provider.current().map(endpointKey).join(',') || 'none yet';
      return `${describeDiscovery(settings)} (live: ${live})${fixed.length > 0 ? ` + static ${fixed.map(endpointKey).join(',')}` : ''}`;
    },
    stop: () => listener.stop(),
  };
}

/** The probability function for rebalanceOnAdded, or undefined when moving is off. */
export function rebalanceProbability(mode: RebalanceMode): ((live: number) => number) | undefined {
  if (mode === 'off') return undefined;
  if (mode === 'always') return () => 1;
  return (live) => 1 / Math.max(1, live);
}
