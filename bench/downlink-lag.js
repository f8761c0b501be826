#!/usr/bin/env node
// Downlink delivery under a steady uplink (soak finding 3): does the downlink keep up, and where does it lag?
//
//   baseline  a bare rhea producer sends the same rate of durable messages (waiting for each accept, up to 64 in
//             flight) to two queues, and a bare rhea consumer per queue (credit_window 0, 10 credits, one back per
//             accept: the SDK's default prefetch) accepts them. Lag = accepted by the broker -> received.
//   hub       startHub in this process (dist/, SQLite in a temp dir, RTS_MESSAGE_SECURITY=off by default), two SDK
//             systems (RtsClient from dist/sdk) registered, subscribed and joined; each sends, `--rate` times a
//             second, one loop of register + change (+ a retire every third loop), so ~2.33 uplink messages per
//             loop. Every directory change of one system becomes one downlink message to the other.
//             Measured per downlink message, by its envelope id and correlation id:
//               uplink accepted by the broker (the SDK helper resolved)        t_up
//               downlink accepted by the broker (the hub's debug log line 'downlink message sent')  t_pub
//               handler called in the receiving SDK                           t_rcv
//             and reported every 10 s: uplink sent, downlink published, received, published - received (on the
//             queue), with lags pub - up and rcv - pub (p50 / p99). After the load stops, the time until every
//             published message has been received.
//
//   npx tsc -p tsconfig.build.json && node bench/downlink-lag.js [--seconds 60] [--rate 5] [--prefetch 10]
//        [--security off|jose] [--port 23110] [--only rhea,hub] [--json out.json]
'use strict';
const { randomUUID } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { startBroker } = require('./uplink');
const { ROOT, dist, parseArgs, percentiles, machine, pressure, fmtPressure, tempDir, rmrf, freePort, sleep } = require('./lib');

const rhea = require(require.resolve('rhea', { paths: [ROOT] }));
const pino = require(require.resolve('pino', { paths: [ROOT] }));

const a = parseArgs();
const SECONDS = Number(a.seconds ?? 60);
const RATE = Number(a.rate ?? 5); // loops per second per system; ~2.33 uplink messages per loop
const PREFETCH = Number(a.prefetch ?? 10); // the SDK's default
const SECURITY = String(a.security ?? 'off');
const ONLY = a.only ? String(a.only).split(',') : ['rhea', 'hub'];
const SYSTEMS = ['city-a', 'city-b'];
const MSGS_PER_LOOP = 7 / 3;

const { startHub } = dist('bootstrap/main');
const { loadConfig } = dist('bootstrap/config');
const { RtsClient, generatePartyKeys, joseCodecFor, registerSystem } = dist('sdk');

const profile = (i, v = 0) => ({
  name: `Dr. Expert ${i}`,
  title: v ? `Chief physician ${v}` : 'Chief physician',
  specialties: [i % 2 === 0 ? 'cardiology' : 'endocrinology'],
  location: { city: 'Wuhan', hospital: `Hospital ${i % 7}` },
  languages: ['zh', 'en'],
  availability: 'available',
});

const p = (xs) => {
  const r = percentiles(xs, [50, 99]);
  return xs.length ? `${Math.round(r.p50)} / ${Math.round(r.p99)} ms` : '-';
};

/** A loop run `rate` times a second for `seconds`; each tick's work runs on its own (a slow one does not delay the next). */
const paced = async (rate, seconds, tick) => {
  const t0 = Date.now();
  const running = new Set();
  for (let i = 0; Date.now() - t0 < seconds * 1000; i++) {
    const due = t0 + (i * 1000) / rate;
    if (due > Date.now()) await sleep(due - Date.now());
    const work = tick(i).catch((e) => console.error('tick failed:', e.message));
    running.add(work);
    void work.finally(() => running.delete(work));
  }
  await Promise.all(running);
};

// ---------- baseline: bare rhea producer and consumers ----------

const runRhea = async (broker) => {
  const container = rhea.create_container({ id: `bench-dl-${randomUUID().slice(0, 8)}` });
  const connection = container.connect({ host: '127.0.0.1', port: broker.port, reconnect: false });
  await new Promise((r) => connection.once('connection_open', r));
  const queues = SYSTEMS.map((s) => `bench.downlink.${s}`);
  const sentAt = new Map();
  const lags = [];
  let received = 0;
  let sent = 0;
  for (const q of queues) {
    const receiver = connection.open_receiver({ source: { address: q }, autoaccept: false, credit_window: 0 });
    receiver.once('receiver_open', () => receiver.add_credit(PREFETCH));
    receiver.on('message', (ctx) => {
      const t = sentAt.get(ctx.message.message_id);
      if (t !== undefined) lags.push(Date.now() - t);
      received += 1;
      ctx.delivery.accept();
      receiver.add_credit(1);
    });
  }
  const senders = queues.map((q) => connection.open_sender({ target: { address: q, durable: 2 } }));
  await Promise.all(senders.map((s) => (s.sendable() ? undefined : new Promise((r) => s.once('sendable', r)))));
  const pending = new Map();
  for (const s of senders) s.on('accepted', (ctx) => pending.get(ctx.delivery)?.());
  const send = (sender, i) =>
    new Promise((resolve) => {
      const id = randomUUID();
      const delivery = sender.send({ body: JSON.stringify({ id, i, pad: 'x'.repeat(600) }), durable: true, message_id: id });
      pending.set(delivery, () => {
        pending.delete(delivery);
        sentAt.set(id, Date.now());
        sent += 1;
        resolve();
      });
    });
  const t0 = Date.now();
  // Each system's uplink loop becomes downlink messages to the other system: the same count, rate and size.
  await paced(RATE, SECONDS, async (i) => {
    for (const [k, sender] of senders.entries()) {
      const n = i % 3 === 2 ? 3 : 2;
      for (let j = 0; j < n; j++) await send(sender, i * 10 + k);
    }
  });
  const loadSeconds = (Date.now() - t0) / 1000;
  const tEnd = Date.now();
  while (received < sent && Date.now() - tEnd < 120_000) await sleep(20);
  const drainMs = Date.now() - tEnd;
  connection.close();
  return { sent, received, rate: received / loadSeconds, lag: percentiles(lags, [50, 99]), drainMs };
};

// ---------- the hub with two SDK systems ----------

const runHub = async (broker) => {
  const dataDir = tempDir('downlink-lag');
  const published = new Map(); // downlink envelope id -> t_pub
  const publishedCorrelation = new Map(); // downlink envelope id -> correlation id (the uplink's envelope id)
  const logStream = {
    write(line) {
      if (!line.includes('downlink message sent')) return;
      const o = JSON.parse(line);
      published.set(o.id, Date.now());
      publishedCorrelation.set(o.id, o.correlationId);
    },
  };
  const config = loadConfig({
    RTS_DATA_DIR: dataDir,
    RTS_BROKER_URL: broker.url,
    RTS_LOG_LEVEL: 'debug',
    RTS_SHUTDOWN_GRACE_MS: '2000',
    RTS_MESSAGE_SECURITY: SECURITY,
    RTS_AUTH: 'off',
    RTS_HTTP_HOST: '127.0.0.1',
    RTS_HTTP_PORT: String(a['http-port'] ?? (await freePort())),
  });
  const hub = await startHub(config, pino({ level: 'debug' }, logStream));
  const clients = [];
  const upAt = new Map(); // uplink envelope id (= correlation id) -> t_up
  const rcv = new Map(); // system -> Map(downlink id -> t_rcv)
  const lagRcv = [];
  const lagEnd = [];
  try {
    // With message security, each system registers its public keys and its codec signs/encrypts for the hub.
    const codecs = new Map();
    for (const id of SYSTEMS) {
      const system = { id, name: `City ${id}`, area: 'Hubei' };
      if (SECURITY === 'off') {
        const res = await fetch(`${hub.url}/systems`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(system) });
        if (res.status !== 201 && res.status !== 200) throw new Error(`POST /systems: ${res.status} ${await res.text()}`);
      } else {
        const keys = await generatePartyKeys(id);
        await registerSystem(hub.url, system, keys);
        codecs.set(id, await joseCodecFor({ keys, hubUrl: hub.url }));
      }
    }
    for (const id of SYSTEMS) {
      const client = await RtsClient.connect({ systemId: id, url: broker.url, ...(codecs.has(id) ? { codec: codecs.get(id) } : {}) });
      clients.push(client);
      const got = new Map();
      rcv.set(id, got);
      const on = async (m) => {
        if (got.has(m.id)) return;
        const t = Date.now();
        got.set(m.id, t);
        const tp = published.get(m.id);
        if (tp !== undefined) lagRcv.push(t - tp);
        const tu = upAt.get(m.correlationId);
        if (tu !== undefined) lagEnd.push(t - tu);
      };
      await client.subscribe({ onExpertUpserted: on, onExpertRetired: on, onSnapshot: async () => undefined, onSystemJoined: async () => undefined }, { prefetch: PREFETCH });
      await client.joinWithExperts([{ localExpertId: 'seed', ...profile(0) }]);
    }
    const status = async (id) => (await (await fetch(`${hub.url}/systems/${id}`)).json()).status;
    while ((await status('city-a')) !== 'joined' || (await status('city-b')) !== 'joined') await sleep(100);
    await sleep(2000);
    const base = published.size;
    const received = () => [...rcv.values()].reduce((n, m) => n + m.size, 0);
    const rcv0 = received();
    let upSent = 0;
    const up = async (promise) => {
      const id = await promise;
      upAt.set(id, Date.now());
      upSent += 1;
    };
    const t0 = Date.now();
    const rows = [];
    const report = setInterval(() => {
      const pub = published.size - base;
      const got = received() - rcv0;
      const row = { t: Math.round((Date.now() - t0) / 1000), upSent, published: pub, received: got, backlog: pub - got };
      rows.push(row);
      console.log(`  t=${String(row.t).padStart(3)} s  uplink accepted ${row.upSent}  downlink published ${row.published}  received ${row.received}  on the queue ${row.backlog}`);
    }, 10_000);
    await paced(RATE, SECONDS, async (i) => {
      await Promise.all(
        clients.map(async (c) => {
          const id = `e${i}`;
          await up(c.registerExpert(id, profile(i)));
          await up(c.changeExpert(id, profile(i, 1)));
          if (i % 3 === 2) await up(c.retireExpert(`e${i - 2}`));
        }),
      );
    });
    clearInterval(report);
    const loadSeconds = (Date.now() - t0) / 1000;
    const pubAtEnd = published.size - base;
    const rcvAtEnd = received() - rcv0;
    // Every uplink change makes one downlink message to the other system.
    const expected = upSent;
    const tEnd = Date.now();
    while (received() - rcv0 < expected && Date.now() - tEnd < 300_000) await sleep(50);
    const drainMs = Date.now() - tEnd;
    // uplink accepted -> downlink accepted, per published message whose correlation id is an uplink we timed
    const pubLag = [];
    for (const [id, t] of published) {
      const tu = upAt.get(publishedCorrelation.get(id));
      if (tu !== undefined) pubLag.push(t - tu);
    }
    return {
      upSent,
      upRate: upSent / loadSeconds,
      publishedAtEnd: pubAtEnd,
      receivedAtEnd: rcvAtEnd,
      rateReceived: rcvAtEnd / loadSeconds,
      expected,
      receivedFinal: received() - rcv0,
      drainMs,
      lagRcv: percentiles(lagRcv, [50, 99]),
      lagEnd: percentiles(lagEnd, [50, 99]),
      lagPub: percentiles(pubLag, [50, 99]),
      rows,
    };
  } finally {
    for (const c of clients) await c.close().catch(() => undefined);
    await hub.stop();
    rmrf(dataDir);
  }
};

const main = async () => {
  console.log(`downlink lag: ${SECONDS} s at ${RATE} loops/s per system (~${(RATE * MSGS_PER_LOOP).toFixed(1)} uplink msgs/s each), SDK prefetch ${PREFETCH}, security ${SECURITY}`);
  console.log(`machine: ${JSON.stringify(machine())}`);
  const broker = await startBroker(a.port ? Number(a.port) : undefined);
  const out = { seconds: SECONDS, rate: RATE, prefetch: PREFETCH, security: SECURITY, at: new Date().toISOString() };
  try {
    if (ONLY.includes('rhea')) {
      const before = pressure();
      const r = await runRhea(broker);
      out.rhea = r;
      console.log(`rhea baseline: sent ${r.sent}, received ${r.received} (${r.rate.toFixed(1)} msgs/s), lag accepted->received p50/p99 ${Math.round(r.lag.p50)} / ${Math.round(r.lag.p99)} ms, drained ${r.drainMs} ms after the load; ${fmtPressure(before)}`);
    }
    if (ONLY.includes('hub')) {
      const before = pressure();
      const h = await runHub(broker);
      out.hub = h;
      console.log(
        `hub: uplink accepted ${h.upSent} (${h.upRate.toFixed(1)} msgs/s); at the end of the load downlink published ${h.publishedAtEnd}, received ${h.receivedAtEnd} (${h.rateReceived.toFixed(1)} msgs/s); ` +
          `lag uplink accepted->published p50/p99 ${Math.round(h.lagPub.p50)} / ${Math.round(h.lagPub.p99)} ms, published->received ${Math.round(h.lagRcv.p50)} / ${Math.round(h.lagRcv.p99)} ms, uplink accepted->received ${Math.round(h.lagEnd.p50)} / ${Math.round(h.lagEnd.p99)} ms; ` +
          `all ${h.expected} received ${h.receivedFinal === h.expected ? `${h.drainMs} ms after the load` : `NOT within 300 s (${h.receivedFinal})`}; ${fmtPressure(before)}`,
      );
    }
  } finally {
    await broker.stop();
  }
  if (a.json) fs.writeFileSync(path.resolve(String(a.json)), JSON.stringify(out, null, 2));
  else {
    fs.mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
    fs.writeFileSync(path.join(ROOT, 'bench', 'results', `downlink-lag-${Date.now()}.json`), JSON.stringify(out, null, 2));
  }
};

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
