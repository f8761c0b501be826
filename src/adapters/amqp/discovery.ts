// ActiveMQ multicast discovery, listened to by our clients.
//
// A broker with `discoveryUri="multicast://..."` on a transport connector sends a UDP datagram every 500 ms to
// the group address (default 239.255.2.3:6155), text in ISO-8859-1, observed on ActiveMQ 5.18.3:
//
//   default.ActiveMQ-4.alive.%localhost%amqp://127.0.0.1:5701      while the connector runs
//   default.ActiveMQ-4.dead.%localhost%amqp://127.0.0.1:5701       once, on a graceful stop
//
// i.e. `<group>.ActiveMQ-4.<alive|dead>.%<service name>%<published connector URI>`. The URI's host is the
// connector's published host: the machine's host name unless the connector sets
// `publishedAddressPolicy/publishedHostStrategy="IPADDRESS"` (our cluster does). Only a master announces: a
// slave on a shared store has not started its connectors. A kill -9 sends nothing, so a broker silent for
// `expiryMs` (5 s, ActiveMQ's own 10 missed keep-alives) is gone.
//
// `LiveSet` is the pure part (parsing, expiry on a given clock); `MulticastDiscovery` binds it to a UDP socket.
// Only `amqp://` URIs become endpoints; other groups and other schemes (OpenWire's tcp://) are ignored.
import { EventEmitter } from 'node:events';
import { createSocket, type Socket } from 'node:dgram';
import type { AmqpEndpoint } from './connection';
import { endpointKey, parseEndpoint, type EndpointChange, type EndpointProvider } from './endpoint-set';

export const DEFAULT_DISCOVERY_ADDRESS = '239.255.2.3';
export const DEFAULT_DISCOVERY_PORT = 6155;
export const DEFAULT_DISCOVERY_GROUP = 'default';
export const DEFAULT_DISCOVERY_EXPIRY_MS = 5000;

export interface DiscoveryPacket {
  group: string;
  kind: 'alive' | 'dead';
  serviceName: string;
  uri: string;
}

const PACKET = /^(.+)\.ActiveMQ-4\.(alive|dead)\.%([^%]*)%(\S+)$/s;

export function parseDiscoveryPacket(text: string): DiscoveryPacket | undefined {
  const m = PACKET.exec(text.trim());
  if (!m) return undefined;
  return { group: m[1]!, kind: m[2] as 'alive' | 'dead', serviceName: m[3]!, uri: m[4]! };
}

export interface UriMappingOptions {
  /** Host names replaced before use (default: localhost -> 127.0.0.1, since Node may resolve localhost to ::1). */
  hostAliases?: Readonly<Record<string, string>>;
}

/**
 * The AMQP endpoint an announced connector URI stands for, or undefined if it is not AMQP. A wildcard host
 * (0.0.0.0, ::) is replaced by the packet's source address.
 */
export function announcedEndpoint(uri: string, sourceAddress: string | undefined, options: UriMappingOptions = {}): AmqpEndpoint | undefined {
  if (!/^amqp(s|\+ssl)?:\/\//i.test(uri)) return undefined;
  const endpoint = parseEndpoint(uri);
  if (!endpoint) return undefined;
  const aliases = options.hostAliases ?? { localhost: '127.0.0.1' };
  let host = aliases[endpoint.host.toLowerCase()] ?? endpoint.host;
  if (host === '0.0.0.0' || host === '::' || host === '[::]') {
    if (!sourceAddress) return undefined;
    host = sourceAddress;
  }
  return endpoint.tls ? { host, port: endpoint.port, tls: true } : { host, port: endpoint.port };
}

export interface LiveBroker {
  endpoint: AmqpEndpoint;
  uri: string;
  serviceName: string;
  firstSeen: number;
  lastSeen: number;
}

export interface LiveSetOptions extends UriMappingOptions {
  group?: string;
  expiryMs?: number;
}

export type LiveSetChange = EndpointChange & { broker: LiveBroker; reason: 'alive' | 'dead' | 'expired' };

/** The live brokers of one discovery group; pure: every call is given `now` (ms). */
export class LiveSet {
  private readonly brokers = new Map<string, LiveBroker>();
  readonly group: string;
  readonly expiryMs: number;
  constructor(private readonly options: LiveSetOptions = {}) {
    this.group = options.group ?? DEFAULT_DISCOVERY_GROUP;
    this.expiryMs = options.expiryMs ?? DEFAULT_DISCOVERY_EXPIRY_MS;
  }

  /** Applies one datagram; returns the changes it caused (none for a keep-alive of a known broker). */
  receive(text: string, sourceAddress: string | undefined, now: number): LiveSetChange[] {
    const packet = parseDiscoveryPacket(text);
    if (!packet || packet.group !== this.group) return [];
    const endpoint = announcedEndpoint(packet.uri, sourceAddress, this.options);
    if (!endpoint) return [];
    const key = endpointKey(endpoint);
    const known = this.brokers.get(key);
    if (packet.kind === 'dead') {
      if (!known) return [];
      this.brokers.delete(key);
      return [{ kind: 'removed', endpoint: known.endpoint, broker: known, reason: 'dead' }];
    }
    if (known) {
      known.lastSeen = now;
      return [];
    }
    const broker: LiveBroker = { endpoint, uri: packet.uri, serviceName: packet.serviceName, firstSeen: now, lastSeen: now };
    this.brokers.set(key, broker);
    return [{ kind: 'added', endpoint, broker, reason: 'alive' }];
  }

  /** Drops brokers silent for `expiryMs` or more. */
  expire(now: number): LiveSetChange[] {
    const changes: LiveSetChange[] = [];
    for (const [key, broker] of this.brokers) {
      if (now - broker.lastSeen >= this.expiryMs) {
        this.brokers.delete(key);
        changes.push({ kind: 'removed', endpoint: broker.endpoint, broker, reason: 'expired' });
      }
    }
    return changes;
  }

  /** Live brokers in the order they were first seen. */
  list(): LiveBroker[] {
    return [...this.brokers.values()].sort((a, b) => a.firstSeen - b.firstSeen);
  }

  endpoints(): AmqpEndpoint[] {
    return this.list().map((b) => b.endpoint);
  }
}

export interface MulticastDiscoveryOptions extends LiveSetOptions {
  /** Multicast group address (default 239.255.2.3). */
  address?: string;
  /** UDP port (default 6155). */
  port?: number;
  /**
   * Local IPv4 address of the interface to join the group on (e.g. '127.0.0.1' for the loopback); default: the
   * system's choice. Keep discovery on the network the brokers are meant to be found on.
   */
  interfaceAddress?: string;
  /** How often silence is checked (default 250 ms). */
  sweepIntervalMs?: number;
  now?: () => number;
}

export interface DiscoveryEvents {
  added: [LiveSetChange];
  removed: [LiveSetChange];
  /** After any added/removed, with the new live endpoints. */
  changed: [readonly AmqpEndpoint[]];
  error: [Error];
}

/** Listens for ActiveMQ's announcements and keeps the live set; an EndpointProvider for AmqpConnection. */
export class MulticastDiscovery extends EventEmitter<DiscoveryEvents> implements EndpointProvider {
  readonly live: LiveSet;
  private socket: Socket | undefined;
  private sweep: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private packets = 0;

  constructor(private readonly options: MulticastDiscoveryOptions = {}) {
    super();
    this.live = new LiveSet(options);
    this.now = options.now ?? Date.now;
  }

  /** Binds the socket and joins the group; resolves once listening. */
  start(): Promise<void> {
    if (this.socket) return Promise.resolve();
    const address = this.options.address ?? DEFAULT_DISCOVERY_ADDRESS;
    const port = this.options.port ?? DEFAULT_DISCOVERY_PORT;
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    this.socket = socket;
    socket.on('message', (buffer, remote) => {
      this.packets += 1;
      this.apply(this.live.receive(buffer.toString('latin1'), remote.address, this.now()));
    });
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => {
        this.socket = undefined;
        socket.close();
        reject(error);
      };
      socket.once('error', onError);
      socket.bind(port, () => {
        try {
          socket.addMembership(address, this.options.interfaceAddress);
        } catch (error) {
          onError(error instanceof Error ? error : new Error(String(error)));
          return;
        }
        socket.off('error', onError);
        socket.on('error', (error) => {
          if (this.listenerCount('error') > 0) this.emit('error', error);
        });
        this.sweep = setInterval(() => this.apply(this.live.expire(this.now())), this.options.sweepIntervalMs ?? 250);
        this.sweep.unref();
        resolve();
      });
    });
  }

  stop(): Promise<void> {
    if (this.sweep) clearInterval(this.sweep);
    this.sweep = undefined;
    const socket = this.socket;
    this.socket = undefined;
    if (!socket) return Promise.resolve();
    return new Promise((resolve) => socket.close(() => resolve()));
  }

  /** Datagrams received so far (announcements of every group). */
  packetCount(): number {
    return this.packets;
  }

  current(): readonly AmqpEndpoint[] {
    return this.live.endpoints();
  }

  subscribe(listener: (change: EndpointChange) => void): () => void {
    const added = (c: LiveSetChange) => listener({ kind: 'added', endpoint: c.endpoint });
    const removed = (c: LiveSetChange) => listener({ kind: 'removed', endpoint: c.endpoint });
    this.on('added', added);
    this.on('removed', removed);
    return () => {
      this.off('added', added);
      this.off('removed', removed);
    };
  }

  /** Resolves when `predicate(live endpoints)` holds; rejects after `timeoutMs`. */
  waitFor(predicate: (endpoints: readonly AmqpEndpoint[]) => boolean, timeoutMs: number): Promise<readonly AmqpEndpoint[]> {
    if (predicate(this.current())) return Promise.resolve(this.current());
    return new Promise((resolve, reject) => {
      const onChanged = (endpoints: readonly AmqpEndpoint[]) => {
        if (!predicate(endpoints)) return;
        clearTimeout(timer);
        this.off('changed', onChanged);
        resolve(endpoints);
      };
      const timer = setTimeout(() => {
        this.off('changed', onChanged);
        reject(new Error(`discovery: condition not met within ${timeoutMs} ms (live: ${this.current().map(endpointKey).join(', ') || 'none'})`));
      }, timeoutMs);
      this.on('changed', onChanged);
    });
  }

  private apply(changes: LiveSetChange[]): void {
    if (changes.length === 0) return;
    for (const change of changes) this.emit(change.kind, change);
    this.emit('changed', this.current());
  }
}
