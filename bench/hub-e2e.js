#!/usr/bin/env node
// Hub end-to-end uplink processing versus a bare rhea consumer's drain rate, in the same run on the same broker
// (issue 4, "Benchmark": aim hub >= 0.7x rhea).
//
//   baseline  the uplink queue pre-filled with N durable expert.registered envelopes; a bare rhea receiver with the
//             hub's credit scheme (credit_window 0, RTS_UPLINK_PREFETCH = 200 credits, one credit back per settled
//             message) accepts each message without looking at it. Timed from connect to the N-th accept.
//   hub       the same N (new expert ids) pre-filled while no hub runs; then the hub starts in this process
//             (startHub from dist/bootstrap/main.js, SQLite in a temp dir, RTS_MESSAGE_SECURITY=off, RTS_AUTH=off)
//             and drains it: decode + zod, the directory's command handling, events committed to SQLite, then
//             accept. Timed from the startHub call (store open, projections, consumer attach included) until the
//             N-th uplink handler resolved (= its events committed); the store is then checked (N ExpertRegistered
//             events) and the queue must be empty.
// The system is registered (POST /systems) and joined (system.join.requested 0/0) by an earlier hub start on the
// same data dir, before the pre-fill; it is the only system, so no downlink fan-out happens. Bodies are built as
// the SDK's JsonCodec does (serializeUplink-validated envelope, JSON text as an AMQP value string, the SDK's
// application-properties). Rounds alternate baseline and hub; medians and their ratio are reported.
//
//   npx tsc -p tsconfig.build.json && node bench/hub-e2e.js [--messages 5000] [--rounds 3] [--prefetch 200] [--json out.json]
'use strict';
const { randomUUID } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { startBroker } = require('./uplink');
const { ROOT, dist, BetterSqlite3, parseArgs, median, machine, pressure, fmtPressure, tempDir, rmrf, freePort, sleep } = require('./lib');

const rhea = require(require.resolve('rhea', { paths: [ROOT] }));
const pino = require(require.resolve('pino', { paths: [ROOT] }));

const a = parseArgs();
const N = Number(a.messages ?? 5000);
const ROUNDS = Number(a.rounds ?? 3);
const PREFETCH = Number(a.prefetch ?? 200); // the hub's default RTS_UPLINK_PREFETCH, for both sides
// --only hub: no baseline rounds (for a profile of the hub: node --cpu-prof bench/hub-e2e.js --only hub).
const ONLY = a.only ? String(a.only).split(',') : ['rhea', 'hub'];
const UPLINK = 'rts.uplink';
const SYSTEM = 'bench-e2e';
const fmt = (x) => Math.round(x).toLocaleString('en-US');

const { serializeUplink } = dist('adapters/messaging/messages');
const { startHub } = dist('bootstrap/main');
const { loadConfig } = dist('bootstrap/config');

const profile = (i) => ({
  name: `Dr. Expert ${i}`,
  title: 'Chief physician',
  specialties: [i % 2 === 0 ? 'cardiology' : 'endocrinology'],
  location: { city: 'Wuhan', hospital: `Hospital ${i % 7}` },
  languages: ['zh', 'en'],
  availability: 'available',
});

/** One uplink message exactly as RtsClient.sendUplink + JsonCodec would send it. */
const sdkMessage = (type, payload) => {
  const id = randomUUID();
  const envelope = { id, type, version: 1, systemId: SYSTEM, correlationId: id, time: new Date().toISOString(), payload };
  serializeUplink(envelope); // the SDK validates against the contract first (throws on a bad envelope)
  return {
    body: JSON.stringify(envelope),
    durable: true,
    message_id: id,
    correlation_id: id,
    subject: type,
    application_properties: { messageId: id, type, version: 1, systemId: SYSTEM, correlationId: id, contentType: 'application/json', codec: 'json' },
  };
};

/** Sends the messages durably to the queue, at most `inflight` unsettled; resolves when all are accepted. */
const fill = (port, messages, inflight = 256) =>
  new Promise((resolve, reject) => {
    const container = rhea.create_container({ id: `bench-fill-${randomUUID().slice(0, 8)}` });
    const connection = container.connect({ host: '127.0.0.1', port, reconnect: false });
    const sender = connection.open_sender({ target: { address: UPLINK, durable: 2 }, snd_settle_mode: 0 });
    let sent = 0;
    let accepted = 0;
    const pump = () => {
      while (sent < messages.length && sent - accepted < inflight && sender.sendable()) sender.send(messages[sent++]);
    };
    sender.on('sendable', pump);
    sender.on('accepted', () => {
      if (++accepted === messages.length) {
        connection.once('connection_close', () => resolve());
        connection.close();
      } else pump();
    });
    for (const bad of ['rejected', 'released', 'modified']) sender.on(bad, () => reject(new Error(`fill: ${bad}`)));
    connection.on('connection_error', (c) => reject(new Error(String(c.error))));
    connection.on('error', reject);
  });

/**
 * The bare consumer: the hub's credit scheme (QueueConsumer: credit_window 0, top credit up to `prefetch` as
 * messages settle), accept each message at once. Resolves { rate, received } after `n` accepted, then waits
 * `idleMs` to see that nothing else was in the queue.
 */
const drainRhea = (port, n, prefetch, idleMs = 500) =>
  new Promise((resolve, reject) => {
    const container = rhea.create_container({ id: `bench-drain-${randomUUID().slice(0, 8)}` });
    const cpu0 = process.cpuUsage();
    const broker0 = brokerCpu();
    const t0 = process.hrtime.bigint();
    const connection = container.connect({ host: '127.0.0.1', port, reconnect: false });
    const receiver = connection.open_receiver({ source: { address: UPLINK }, autoaccept: false, credit_window: 0 });
    let received = 0;
    let seconds;
    let cpu;
    receiver.once('receiver_open', () => receiver.add_credit(prefetch));
    receiver.on('message', (ctx) => {
      ctx.delivery.accept();
      received += 1;
      receiver.add_credit(1);
      if (received === n) {
        seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        cpu = process.cpuUsage(cpu0);
        const cpuSeconds = (cpu.user + cpu.system) / 1e6;
        const brokerUsPerMessage = ((brokerCpu() - broker0) * 1e6) / n;
        setTimeout(() => {
          connection.once('connection_close', () => resolve({ rate: n / seconds, seconds, received, cpuUsPerMessage: (cpuSeconds * 1e6) / n, cpuShare: cpuSeconds / seconds, brokerUsPerMessage }));
          connection.close();
        }, idleMs);
      }
    });
    connection.on('connection_error', (c) => reject(new Error(String(c.error))));
    connection.on('error', reject);
  });

/** Messages left in the queue: a short-lived receiver that releases whatever it gets. */
const queueDepthProbe = (port, waitMs = 700) =>
  new Promise((resolve, reject) => {
    const container = rhea.create_container({ id: `bench-probe-${randomUUID().slice(0, 8)}` });
    const connection = container.connect({ host: '127.0.0.1', port, reconnect: false });
    const receiver = connection.open_receiver({ source: { address: UPLINK }, autoaccept: false, credit_window: 0 });
    let seen = 0;
    receiver.once('receiver_open', () => receiver.add_credit(1000));
    receiver.on('message', (ctx) => {
      seen += 1;
      ctx.delivery.release({ undeliverable_here: false, delivery_failed: false });
    });
    setTimeout(() => {
      connection.once('connection_close', () => resolve(seen));
      connection.close();
    }, waitMs);
    connection.on('connection_error', (c) => reject(new Error(String(c.error))));
    connection.on('error', reject);
  });

/** CPU seconds (user + system) used so far by a process and its descendants (the broker's JVM under broker.sh). */
const treeCpuSeconds = (pid) => {
  const tick = 100; // USER_HZ on Linux
  let total = 0;
  const visit = (p) => {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += (Number(fields[11]) + Number(fields[12])) / tick; // utime, stime
      for (const t of fs.readdirSync(`/proc/${p}/task`)) {
        const children = fs.readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim();
        for (const c of children ? children.split(' ') : []) visit(c);
      }
    } catch {
      // gone
    }
  };
  visit(pid);
  return total;
};
let brokerPid = null;
const brokerCpu = () => (brokerPid ? treeCpuSeconds(brokerPid) : NaN);

const hubConfig = async (broker, dataDir, extra = {}) =>
  loadConfig({
    RTS_DATA_DIR: dataDir,
    RTS_BROKER_URL: broker.url,
    RTS_LOG_LEVEL: 'silent',
    RTS_SHUTDOWN_GRACE_MS: '2000',
    RTS_MESSAGE_SECURITY: 'off',
    RTS_AUTH: 'off',
    RTS_UPLINK_PREFETCH: String(PREFETCH),
    RTS_HTTP_HOST: '127.0.0.1',
    RTS_HTTP_PORT: String(await freePort()),
    ...extra,
  });
const silent = pino({ level: 'silent' });

const until = async (what, predicate, timeoutMs = 120_000, everyMs = 20) => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await sleep(everyMs);
  }
};

/** A data dir whose store has SYSTEM registered and joined (a hub started and stopped on it). */
const preparedDataDir = async (broker) => {
  const dataDir = tempDir('hub-e2e');
  const hub = await startHub(await hubConfig(broker, dataDir), silent);
  try {
    const res = await fetch(`${hub.url}/systems`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: SYSTEM, name: 'Bench city', area: 'Hubei' }) });
    if (res.status !== 201 && res.status !== 200) throw new Error(`POST /systems: ${res.status} ${await res.text()}`);
    await fill(broker.port, [sdkMessage('system.join.requested', { expectedBatches: 0, expectedExperts: 0 })]);
    await until('the system joined', async () => (await (await fetch(`${hub.url}/systems/${SYSTEM}`)).json()).status === 'joined', 30_000, 50);
  } finally {
    await hub.stop();
  }
  return dataDir;
};

const countRegistered = (dataDir) => {
  const db = new BetterSqlite3(path.join(dataDir, 'telemed.sqlite'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare(`SELECT count(*) AS n FROM events WHERE type = 'ExpertRegistered'`).get().n;
  } finally {
    db.close();
  }
};

let expertSeq = 0;
const expertMessages = (n) => Array.from({ length: n }, () => {
  const i = expertSeq++;
  return sdkMessage('expert.registered', { localExpertId: `e-${i}`, profile: profile(i) });
});

const roundBaseline = async (broker) => {
  await fill(broker.port, expertMessages(N));
  const r = await drainRhea(broker.port, N, PREFETCH);
  const left = await queueDepthProbe(broker.port);
  if (left !== 0) throw new Error(`baseline: ${left} messages left in ${UPLINK}`);
  return r;
};

const roundHub = async (broker) => {
  const dataDir = await preparedDataDir(broker);
  try {
    const before = countRegistered(dataDir);
    await fill(broker.port, expertMessages(N));
    let handled = 0;
    let tDone = null;
    let cpuDone = null;
    let brokerDone = null;
    const cpu0 = process.cpuUsage();
    const broker0 = brokerCpu();
    const t0 = process.hrtime.bigint();
    const hub = await startHub(await hubConfig(broker, dataDir), silent, {
      wrapUplink: (uplink) => ({
        handleUplink: async (envelope) => {
          const result = await uplink.handleUplink(envelope);
          if (envelope.type === 'expert.registered' && ++handled === N) (tDone = process.hrtime.bigint()), (cpuDone = process.cpuUsage(cpu0)), (brokerDone = brokerCpu());
          return result;
        },
      }),
    });
    const attachedSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const handledAtAttach = handled;
    await until(`the hub handled ${N} messages (at ${handled})`, () => tDone !== null, 240_000, 5);
    const seconds = Number(tDone - t0) / 1e9;
    await sleep(300); // the last accepts go out
    await hub.stop();
    const stored = countRegistered(dataDir) - before;
    if (stored !== N) throw new Error(`hub: ${stored} ExpertRegistered events stored, expected ${N}`);
    const left = await queueDepthProbe(broker.port);
    if (left !== 0) throw new Error(`hub: ${left} messages left in ${UPLINK}`);
    // This process's CPU while the hub drained the queue (user + system), per message and as a share of one core.
    const cpuSeconds = (cpuDone.user + cpuDone.system) / 1e6;
    return { rate: N / seconds, seconds, attachedSeconds, handledAtAttach, rateFromAttach: (N - handledAtAttach) / (seconds - attachedSeconds), cpuUsPerMessage: (cpuSeconds * 1e6) / N, cpuShare: cpuSeconds / seconds, brokerUsPerMessage: ((brokerDone - broker0) * 1e6) / N };
  } finally {
    rmrf(dataDir);
  }
};

async function main() {
  const m = machine();
  const broker = await startBroker();
  brokerPid = broker.pid;
  const rates = { rhea: [], hub: [], hubFromAttach: [] };
  const rounds = [];
  try {
    console.log(`hub-e2e: ${N} durable expert.registered messages per round, prefetch ${PREFETCH}, ${ROUNDS} rounds (+1 warm-up), ActiveMQ on ${broker.url}`);
    console.log(`machine: ${m.cpu}, ${m.nproc} CPUs, ${m.memGiB} GiB, node ${m.node}, SQLite ${m.sqlite}; ${fmtPressure(pressure())}`);
    for (let round = 0; round <= ROUNDS; round++) {
      // Alternate which goes first, so a drift in the machine or the broker (KahaDB growth) hits both alike.
      const order = (round % 2 === 0 ? ['rhea', 'hub'] : ['hub', 'rhea']).filter((w) => ONLY.includes(w));
      const r = {};
      for (const which of order) r[which] = which === 'rhea' ? await roundBaseline(broker) : await roundHub(broker);
      const label = round === 0 ? 'warm-up' : `round ${round}`;
      const parts = [];
      if (r.rhea) parts.push(`rhea ${fmt(r.rhea.rate)}/s (${r.rhea.seconds.toFixed(2)} s; CPU ${fmt(r.rhea.cpuUsPerMessage)} µs/msg, broker ${fmt(r.rhea.brokerUsPerMessage)} µs/msg)`);
      if (r.hub) {
        parts.push(
          `hub ${fmt(r.hub.rate)}/s (${r.hub.seconds.toFixed(2)} s; startHub resolved at ${r.hub.attachedSeconds.toFixed(2)} s with ${r.hub.handledAtAttach} handled; ${fmt(r.hub.rateFromAttach)}/s after; CPU ${fmt(r.hub.cpuUsPerMessage)} µs/msg, ${(100 * r.hub.cpuShare).toFixed(0)}% of a core; broker ${fmt(r.hub.brokerUsPerMessage)} µs/msg)`,
        );
      }
      if (r.rhea && r.hub) parts.push(`hub/rhea ${(r.hub.rate / r.rhea.rate).toFixed(2)}`);
      console.log(`${label}: ${parts.join('  ')}`);
      if (round > 0) {
        if (r.rhea) rates.rhea.push(r.rhea.rate);
        if (r.hub) rates.hub.push(r.hub.rate), rates.hubFromAttach.push(r.hub.rateFromAttach);
        if (r.rhea && r.hub) rounds.push({ round, order, rhea: r.rhea, hub: r.hub });
      }
    }
  } finally {
    await broker.stop();
  }
  const medians = { rhea: median(rates.rhea), hub: median(rates.hub), hubFromAttach: median(rates.hubFromAttach) };
  const ratio = medians.hub / medians.rhea;
  // Each round's hub and rhea run back to back, so the per-round ratio cancels some of a shared machine's drift.
  const pairedRatio = median(rounds.map((r) => r.hub.rate / r.rhea.rate));
  console.log(`\nmedian msgs/s: rhea ${fmt(medians.rhea)}, hub ${fmt(medians.hub)} (after startHub resolved: ${fmt(medians.hubFromAttach)})`);
  console.log(`ratio hub/rhea ${ratio.toFixed(2)} (aim >= 0.70: ${ratio >= 0.7 ? 'met' : 'NOT met'}); after attach ${(medians.hubFromAttach / medians.rhea).toFixed(2)}; median of the per-round ratios ${pairedRatio.toFixed(2)}`);
  console.log(`after: ${fmtPressure(pressure())}`);
  const result = { bench: 'hub-e2e', date: new Date().toISOString(), machine: m, args: { messages: N, rounds: ROUNDS, prefetch: PREFETCH }, rounds, rates, medians, ratio, pairedRatio };
  if (a.json) fs.writeFileSync(a.json, JSON.stringify(result, null, 2));
  return result;
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
module.exports = { main };
