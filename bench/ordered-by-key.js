#!/usr/bin/env node
// What the uplink consumer's per-expert ordering (OrderedByKey) costs a message, against the same async handler
// without it, in the same process: `inflight` messages at a time, each about one of `experts` experts, the
// handler doing nothing (so the figure is the ordering's own cost, not diluted by real work).
//
//   npm run build && node bench/ordered-by-key.js [--messages 200000] [--experts 5000] [--inflight 200] [--rounds 5]
'use strict';
const L = require('./lib');

const args = L.parseArgs();
const MESSAGES = Number(args.messages ?? 200_000);
const EXPERTS = Number(args.experts ?? 5000);
const INFLIGHT = Number(args.inflight ?? 200);
const ROUNDS = Number(args.rounds ?? 5);
const { OrderedByKey } = L.dist('application/ordered-by-key');

const handler = async () => 'accept';
const never = () => false;

/** µs per message for `run(i)` with at most INFLIGHT unsettled. */
const timed = async (run) => {
  const t0 = process.hrtime.bigint();
  const inflight = [];
  for (let i = 0; i < MESSAGES; i++) {
    inflight.push(run(i));
    if (inflight.length >= INFLIGHT) {
      await Promise.all(inflight);
      inflight.length = 0;
    }
  }
  await Promise.all(inflight);
  return Number(process.hrtime.bigint() - t0) / MESSAGES / 1000;
};

(async () => {
  console.log(`ordered-by-key: ${MESSAGES} messages about ${EXPERTS} experts, ${INFLIGHT} in flight, ${ROUNDS} rounds; ${L.fmtPressure(L.pressure())}`);
  const ordered = [];
  const bare = [];
  for (let r = 0; r < ROUNDS; r++) {
    const order = new OrderedByKey();
    ordered.push(await timed((i) => order.arrive().enter([`expert/city-a:e-${i % EXPERTS}`], `m-${i}`, handler, never)));
    bare.push(await timed(() => handler()));
    console.log(`round ${r + 1}: with OrderedByKey ${ordered[r].toFixed(2)} µs/msg, handler alone ${bare[r].toFixed(2)} µs/msg`);
  }
  const m = L.median(ordered);
  const b = L.median(bare);
  console.log(`median: with OrderedByKey ${m.toFixed(2)} µs/msg, handler alone ${b.toFixed(2)} µs/msg: the ordering costs ${(m - b).toFixed(2)} µs per message`);
})();
