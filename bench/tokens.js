#!/usr/bin/env node
'use strict';
/**
 * What verifying a bearer token costs the hub (HS256, the embedded profile's tokens): the project's verifier
 * (`createTokenVerifier`, its cache switched off so every call verifies) against, in the same run,
 *
 *   - jose given the secret as a KeyObject (what the verifier did before 2026-11-30, fifth session), and
 *   - the floor: node:crypto's HMAC-SHA256 over the token's first two parts, compared in constant time, and its
 *     payload parsed (no claim checks): what any HS256 verification must at least do.
 *
 * Each subject verifies the same distinct tokens with `--inflight` calls at once; the subjects take turns in
 * every round; medians over rounds of wall and CPU time per token, and their ratios to the floor.
 *
 *   npm run build && node bench/tokens.js [--tokens 2000] [--inflight 32] [--rounds 7]
 */
const { createHmac, createSecretKey, randomBytes, timingSafeEqual } = require('node:crypto');
const L = require('./lib');

const args = L.parseArgs();
const TOKENS = Number(args.tokens ?? 2000);
const INFLIGHT = Number(args.inflight ?? 32);
const ROUNDS = Number(args.rounds ?? 7);
const issuer = 'telemed-rts';
const audience = 'telemed-rts';

const main = async () => {
  const { createTokenVerifier, signToken } = L.dist('adapters/auth/tokens');
  const jose = await import(require.resolve('jose', { paths: [L.ROOT] }));
  const secret = randomBytes(32);
  const tokens = [];
  for (let i = 0; i < TOKENS; i++) tokens.push(await signToken(secret, { sub: `p${i}`, role: 'patient', patient: '251248-1234' }, { issuer, audience, ttlSeconds: 3600 }));

  const checks = { issuer, audience, algorithms: ['HS256'], requiredClaims: ['exp', 'sub'] };
  const keyObject = createSecretKey(secret);
  const floorKey = createSecretKey(secret);
  const subjects = {
    project: createTokenVerifier({ secret, issuer, audience }, { maxEntries: 0 }),
    'jose+KeyObject': (token) => jose.jwtVerify(token, keyObject, checks),
    floor: async (token) => {
      const dot = token.lastIndexOf('.');
      const mac = createHmac('sha256', floorKey).update(token.slice(0, dot)).digest();
      const given = Buffer.from(token.slice(dot + 1), 'base64url');
      if (given.length !== mac.length || !timingSafeEqual(given, mac)) throw new Error('bad signature');
      return JSON.parse(Buffer.from(token.slice(token.indexOf('.') + 1, dot), 'base64url').toString('utf8'));
    },
  };
  // Every subject must accept every token (and the project's verifier must refuse a forged one), or the timing means nothing.
  for (const [name, verify] of Object.entries(subjects)) {
    const claims = await verify(tokens[0]);
    if ((claims.payload ?? claims).sub !== 'p0') throw new Error(`${name}: unexpected claims`);
  }
  const forged = `${tokens[0].slice(0, tokens[0].lastIndexOf('.'))}.${'A'.repeat(43)}`;
  if (await subjects.project(forged).then(() => true, () => false)) throw new Error('the verifier accepted a forged token');

  const run = async (verify) => {
    let next = 0;
    const cpu0 = process.cpuUsage();
    const t0 = L.nowNs();
    await Promise.all(
      Array.from({ length: INFLIGHT }, async () => {
        while (next < tokens.length) await verify(tokens[next++]);
      }),
    );
    const wallMs = L.msSince(t0);
    const cpu = process.cpuUsage(cpu0);
    return { wallUs: (wallMs * 1000) / tokens.length, cpuUs: (cpu.user + cpu.system) / tokens.length };
  };

  console.log(`tokens bench  tokens=${TOKENS} inflight=${INFLIGHT} rounds=${ROUNDS} (first round discarded as warm-up)`);
  console.log(`machine: ${JSON.stringify(L.machine())}`);
  console.log(`machine now: ${L.fmtPressure(L.pressure())}`);
  const results = Object.fromEntries(Object.keys(subjects).map((name) => [name, []]));
  for (let round = 0; round <= ROUNDS; round++) {
    const order = Object.keys(subjects);
    if (round % 2 === 1) order.reverse();
    for (const name of order) {
      const r = await run(subjects[name]);
      if (round > 0) results[name].push(r);
    }
  }
  const floor = { wallUs: L.median(results.floor.map((r) => r.wallUs)), cpuUs: L.median(results.floor.map((r) => r.cpuUs)) };
  console.log('subject          | wall us/token (median) | CPU us/token (median) | CPU / floor');
  for (const [name, rs] of Object.entries(results)) {
    const wall = L.median(rs.map((r) => r.wallUs));
    const cpu = L.median(rs.map((r) => r.cpuUs));
    console.log(`${name.padEnd(16)} | ${wall.toFixed(1).padStart(22)} | ${cpu.toFixed(1).padStart(21)} | ${(cpu / floor.cpuUs).toFixed(2).padStart(11)}`);
  }
  console.log(`per round, CPU us/token project / jose+KeyObject: ${results.project.map((r, i) => (r.cpuUs / results['jose+KeyObject'][i].cpuUs).toFixed(2)).join(' ')}`);
  console.log(`machine at the end: ${L.fmtPressure(L.pressure())}`);
};

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
