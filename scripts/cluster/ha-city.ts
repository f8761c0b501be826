// A city system driven through the SDK (RtsClient with multicast discovery), for the hub-level HA test and soak;
// run INSIDE the cluster's network namespace (multicast and the hub's HTTP port only exist there):
//
//   ip netns exec rts-ha node -r ./test/support/ts-register.js scripts/cluster/ha-city.ts \
//     '{"systemId":"city-a","discovery":"multicast://239.255.2.3:6155?group=default&interface=127.0.0.1&rebalance=off"}'
//   (add "tlsCaFile":"ca.pem" for a cluster started with RTS_HA_TLS_KEYSTORE: the brokers then take TLS only;
//   "username" and "password" for one with RTS_HA_USERS_FILE; "url" to name brokers instead of discovering them)
//
// stdout: one JSON object per line ({ev, t, ...}). stdin: one command per line:
//   http METHOD URL [JSON]   one HTTP request (the hub's port is inside the namespace); prints {ev:'http', status, body}
//   join                     system.join.requested with no experts; prints {ev:'joined'} when system.joined arrives
//   stream RATE              registers experts x1, x2, ... (deterministic message ids) at RATE/s, WINDOW in flight
//   pause                    stops streaming (waits for in-flight sends)
//   status                   counts
//   report                   everything: registered (accepted) local ids, upserted expert ids received (distinct),
//                            raw deliveries, failovers
//   exit                     closes the client and exits
// Downlink is deduped by envelope id (the SDK's seen store) and counted both raw and distinct.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { RtsClient, type RtsLogger } from '../../src/sdk';

interface Config {
  systemId: string;
  discovery: string;
  /** A PEM file of the CA the brokers' certificates are verified with, for a cluster whose AMQP takes TLS only. */
  tlsCaFile?: string;
  /** A broker account (SASL PLAIN), for a cluster started with RTS_HA_USERS_FILE. */
  username?: string;
  password?: string;
  /** Brokers by URL instead of discovery ('amqps://127.0.0.1:5703'). */
  url?: string;
  window: number;
  maxRunMs: number;
}

const config: Config = { systemId: 'city-a', discovery: 'multicast://default', window: 10, maxRunMs: 15 * 60 * 1000, ...(JSON.parse(process.argv[2] ?? '{}') as Partial<Config>) };

const out = (ev: string, fields: object = {}) => process.stdout.write(`${JSON.stringify({ ev, t: Date.now(), systemId: config.systemId, ...fields })}\n`);
const pick = (fields: object) => {
  const f = fields as Record<string, unknown>;
  return { event: f.event, endpoint: f.endpoint, from: f.from, to: f.to, pauseMs: f.pauseMs, reason: f.reason, kind: f.kind, error: f.error };
};
const logger: RtsLogger = {
  info: (fields, message) => out('log', { level: 'info', message, ...pick(fields) }),
  warn: (fields, message) => out('log', { level: 'warn', message, ...pick(fields) }),
  error: (fields, message) => out('log', { level: 'error', message, ...pick(fields) }),
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const hardStop = setTimeout(() => {
    out('error', { message: `maxRunMs ${config.maxRunMs} exceeded` });
    process.exit(3);
  }, config.maxRunMs);
  hardStop.unref();

  const tls = config.tlsCaFile ? { tls: { ca: readFileSync(config.tlsCaFile, 'utf8') } } : {};
  const sasl = config.username ? { sasl: { mechanism: 'plain' as const, username: config.username, password: config.password ?? '' } } : {};
  const brokers = config.url ? { url: config.url } : { discovery: config.discovery };
  const client = await RtsClient.connect({ systemId: config.systemId, ...brokers, ...tls, ...sasl, logger, connectTimeoutMs: 60000, sendTimeoutMs: 180000, reconnect: { initialDelayMs: 50, maxDelayMs: 1000 } });
  let lostAt: number | undefined;
  const failovers: Array<{ from: string | undefined; to: string; pauseMs: number }> = [];
  let lostFrom: string | undefined;
  client.on('disconnected', (e) => {
    if (lostAt === undefined) {
      lostAt = Date.now();
      lostFrom = e.endpoint ? `${e.endpoint.host}:${e.endpoint.port}` : undefined;
    }
  });
  client.on('connected', (e) => {
    const to = `${e.endpoint.host}:${e.endpoint.port}`;
    if (lostAt !== undefined) {
      failovers.push({ from: lostFrom, to, pauseMs: Date.now() - lostAt });
      out('failover', { from: lostFrom, to, pauseMs: Date.now() - lostAt });
    } else out('connected', { endpoint: to });
    lostAt = undefined;
  });

  const upserted = new Map<string, number>(); // expertId -> revision (max)
  const downlinkIds = new Set<string>();
  let rawDeliveries = 0;
  let joined = false;
  await client.subscribe(
    {
      onExpertUpserted: async (m) => {
        downlinkIds.add(m.id);
        upserted.set(m.payload.expertId, Math.max(upserted.get(m.payload.expertId) ?? 0, m.payload.revision));
      },
      onSystemJoined: async (m) => {
        downlinkIds.add(m.id);
        if (m.payload.systemId === config.systemId && !joined) {
          joined = true;
          out('joined');
        }
      },
      onSnapshot: async (m) => {
        downlinkIds.add(m.id);
        for (const x of m.payload.experts) upserted.set(x.expertId, Math.max(upserted.get(x.expertId) ?? 0, x.revision));
      },
      onExpertRetired: async (m) => {
        downlinkIds.add(m.id);
      },
    },
    { prefetch: 50, onOutcome: (e) => e.kind === 'accepted' && (rawDeliveries += 1) },
  );

  const registered: string[] = [];
  let seq = 0;
  let inFlight = 0;
  let failed = 0;
  let streaming: Promise<void> | undefined;
  let rate = 0;
  let lastAcceptAt = Date.now();
  const gaps: number[] = [];

  const stream = async () => {
    let next = Date.now();
    while (rate > 0) {
      if (inFlight >= config.window) {
        await sleep(5);
        continue;
      }
      const n = ++seq;
      const local = `x${n}`;
      inFlight += 1;
      client
        .registerExpert(
          local,
          { name: `Dr. Soak ${n}`, title: 'Attending', specialties: ['cardiology'], location: { city: 'Wuhan', hospital: 'Hospital 1' }, languages: ['zh'], availability: 'available' },
          { messageId: `reg-${local}` },
        )
        .then(() => {
          registered.push(local);
          const now = Date.now();
          if (now - lastAcceptAt >= 300) gaps.push(now - lastAcceptAt);
          lastAcceptAt = Math.max(lastAcceptAt, now);
        })
        .catch((error: unknown) => {
          failed += 1;
          out('error', { message: `register ${local}: ${error instanceof Error ? error.message : String(error)}` });
        })
        .finally(() => (inFlight -= 1));
      next += 1000 / rate;
      const wait = next - Date.now();
      if (wait > 0) await sleep(wait);
      else if (wait < -1000) next = Date.now();
    }
    for (let i = 0; i < 3600 && inFlight > 0; i++) await sleep(50);
  };

  const status = () => ({ connected: client.isConnected(), sent: seq, registered: registered.length, inFlight, failed, upserted: upserted.size, downlink: downlinkIds.size, rawDeliveries, joined });
  out('ready', status());

  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    const [cmd, ...args] = line.trim().split(' ');
    try {
      if (cmd === 'http') {
        const [method, url, ...rest] = args;
        const body = rest.join(' ');
        const res = await fetch(url!, { method, headers: body ? { 'content-type': 'application/json', accept: '*/*' } : { accept: '*/*' }, ...(body ? { body } : {}) });
        const text = await res.text();
        out('http', { status: res.status, body: text.length > 200000 ? text.slice(0, 200000) : text });
      } else if (cmd === 'join') {
        await client.requestJoin({ expectedBatches: 0, expectedExperts: 0 }, { messageId: 'join' });
        out('join-sent');
      } else if (cmd === 'stream') {
        rate = Number(args[0] ?? 20);
        streaming ??= stream().finally(() => (streaming = undefined));
        out('streaming', { rate });
      } else if (cmd === 'pause') {
        rate = 0;
        await streaming;
        out('paused', status());
      } else if (cmd === 'status') out('status', status());
      else if (cmd === 'report') out('report', { ...status(), registeredIds: registered, upsertedIds: [...upserted.keys()], gaps, failovers });
      else if (cmd === 'exit') break;
    } catch (error) {
      out('error', { message: `${cmd}: ${error instanceof Error ? error.message : String(error)}` });
    }
  }
  rate = 0;
  await streaming;
  await client.close(5000).catch(() => undefined);
  out('exited');
  process.exit(0);
}

main().catch((error: unknown) => {
  out('error', { message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  process.exit(2);
});
