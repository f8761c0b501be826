// Where an AmqpConnection may connect: a static list or a live set (multicast discovery), and the order in which
// a reconnecting client tries them.
//
// Static lists: `failover:(amqp://a:5673,amqp://b:5673)?randomize=false` (ActiveMQ's failover URI; its query is
// ignored), `amqp://a:5673,amqp://b:5673`, `a:5673, b` (bare host = default port). Pure: no I/O, no clock of its
// own (the rotation is given `now`).
import type { AmqpEndpoint } from './connection';

export const DEFAULT_AMQP_PORT = 5672;

export type EndpointChange = { kind: 'added' | 'removed'; endpoint: AmqpEndpoint };

/** A source of broker endpoints that may change while a client runs. */
export interface EndpointProvider {
  /** The endpoints that may be tried now (live ones, for discovery); may be empty. */
  current(): readonly AmqpEndpoint[];
  /** Told about every change; returns the unsubscribe function. Static providers never call it. */
  subscribe(listener: (change: EndpointChange) => void): () => void;
}

export function endpointKey(endpoint: AmqpEndpoint): string {
  return `${endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host}:${endpoint.port}`;
}

export function sameEndpoint(a: AmqpEndpoint | undefined, b: AmqpEndpoint | undefined): boolean {
  return a !== undefined && b !== undefined && a.host === b.host && a.port === b.port;
}

export class StaticEndpoints implements EndpointProvider {
  readonly endpoints: readonly AmqpEndpoint[];
  constructor(endpoints: readonly AmqpEndpoint[]) {
    if (endpoints.length === 0) throw new Error('StaticEndpoints: at least one endpoint is required');
    this.endpoints = endpoints.map((e) => ({ ...e }));
  }
  current(): readonly AmqpEndpoint[] {
    return this.endpoints;
  }
  subscribe(): () => void {
    return () => undefined;
  }
}

/**
 * Parses one broker URL: `amqp://host:port`, `amqp+ssl://...` is refused (TLS is not wired here), `host:port`,
 * `host`, `[::1]:5673`. Returns undefined for anything else.
 */
export function parseEndpoint(text: string, defaultPort = DEFAULT_AMQP_PORT): AmqpEndpoint | undefined {
  let rest = text.trim();
  if (rest === '') return undefined;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(rest);
  let tls = false;
  if (scheme) {
    const name = scheme[1]!.toLowerCase();
    tls = name === 'amqps' || name === 'amqp+ssl';
    if (name !== 'amqp' && !tls) return undefined;
    rest = rest.slice(scheme[0].length);
  }
  rest = rest.replace(/[/?#].*$/, '');
  const at = rest.lastIndexOf('@');
  if (at >= 0) rest = rest.slice(at + 1);
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
  if (v6) {
    host = v6[1]!;
    portText = v6[2];
  } else {
    const m = /^([^:\s]+)(?::(\d+))?$/.exec(rest);
    if (!m) return undefined;
    host = m[1]!;
    portText = m[2];
  }
  const port = portText === undefined ? (tls ? 5671 : defaultPort) : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return tls ? { host, port, tls } : { host, port };
}

/**
 * A static list: `failover:(u1,u2,...)[?options]`, `failover:u1,u2`, or a comma/whitespace separated list.
 * Throws on an entry that is not an AMQP endpoint (a typo should not silently shrink the cluster).
 */
export function parseEndpointList(text: string, defaultPort = DEFAULT_AMQP_PORT): AmqpEndpoint[] {
  let body = text.trim();
  const failover = /^failover:(?:\((.*)\)(?:\?.*)?|(.*))$/is.exec(body);
  if (failover) body = (failover[1] ?? failover[2] ?? '').trim();
  const parts = body.split(/[\s,]+/).filter((p) => p !== '');
  if (parts.length === 0) throw new Error(`no broker endpoints in "${text}"`);
  const endpoints: AmqpEndpoint[] = [];
  for (const part of parts) {
    const endpoint = parseEndpoint(part, defaultPort);
    if (!endpoint) throw new Error(`not an AMQP endpoint: "${part}" (in "${text}")`);
    if (!endpoints.some((e) => sameEndpoint(e, endpoint))) endpoints.push(endpoint);
  }
  return endpoints;
}

export interface EndpointRotationOptions {
  /** An endpoint that failed is tried again only after this many ms, unless nothing else is left (default 3000). */
  failureCooldownMs?: number;
  /** Where the rotation starts: 'first' (in list order) or 'random' (spreads clients; default). */
  start?: 'first' | 'random';
  random?: () => number;
}

/**
 * Picks the endpoint for the next connection attempt: round robin over the provider's current list, skipping
 * endpoints that failed within the cooldown (the broker we just lost is still in a discovery live set for up to
 * 5 s after a kill -9: no dead packet), unless every endpoint failed recently. A one-shot preference (`prefer`)
 * wins while it is still offered (used to move to a newly added broker).
 */
export class EndpointRotation {
  private cursor: number | undefined;
  private readonly failedAt = new Map<string, number>();
  private preferred: AmqpEndpoint | undefined;
  private readonly cooldownMs: number;
  private readonly start: 'first' | 'random';
  private readonly random: () => number;

  constructor(options: EndpointRotationOptions = {}) {
    this.cooldownMs = options.failureCooldownMs ?? 3000;
    this.start = options.start ?? 'random';
    this.random = options.random ?? Math.random;
  }

  markFailed(endpoint: AmqpEndpoint, now: number): void {
    this.failedAt.set(endpointKey(endpoint), now);
  }

  markConnected(endpoint: AmqpEndpoint): void {
    this.failedAt.delete(endpointKey(endpoint));
  }

  prefer(endpoint: AmqpEndpoint): void {
    this.preferred = { ...endpoint };
  }

  /** The next endpoint to try from `list`, or undefined when the list is empty. */
  next(list: readonly AmqpEndpoint[], now: number): AmqpEndpoint | undefined {
    if (list.length === 0) return undefined;
    const preferred = this.preferred;
    this.preferred = undefined;
    if (preferred && list.some((e) => sameEndpoint(e, preferred))) return preferred;
    if (this.cursor === undefined) this.cursor = this.start === 'random' ? Math.floor(this.random() * list.length) : 0;
    const healthy = (e: AmqpEndpoint) => {
      const at = this.failedAt.get(endpointKey(e));
      return at === undefined || now - at >= this.cooldownMs;
    };
    for (let i = 0; i < list.length; i++) {
      const candidate = list[(this.cursor + i) % list.length]!;
      if (healthy(candidate)) {
        this.cursor = (this.cursor + i + 1) % list.length;
        return candidate;
      }
    }
    // Everything failed recently: the one that failed longest ago.
    let best = list[0]!;
    let bestAt = Infinity;
    for (const e of list) {
      const at = this.failedAt.get(endpointKey(e)) ?? -Infinity;
      if (at < bestAt) {
        best = e;
        bestAt = at;
      }
    }
    return best;
  }
}

/** Delay before reconnect attempt `failures` (0 = first after a loss): exponential, capped, with jitter. */
export function backoffDelay(failures: number, options: { initialMs: number; maxMs: number; jitter: number }, random = Math.random): number {
  const base = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(failures, 30));
  const jitter = Math.max(0, Math.min(1, options.jitter));
  // Spread over [base*(1-jitter), base]: never later than the cap, never a thundering herd on the same tick.
  return Math.round(base * (1 - jitter * random()));
}
