// The identity provider's key set (adapters/auth/remote-key-set.ts) against answers a provider should not give:
// bodies without end, credentials in the URL.
jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRemoteKeySet, type RemoteKeySet, JWKS_MAX_AGE_MS, JWKS_MAX_BODY_BYTES, JWKS_FETCH_TIMEOUT_MS, JWKS_UNKNOWN_KID_COOLDOWN_MS, type JwksFetchOutcome } from '../../src/adapters/auth/remote-key-set';

type Answer = (req: IncomingMessage, res: ServerResponse) => void;

/** A provider on loopback answering with `answer` (changeable), the key set of it, and every fetch's outcome. */
const withProvider = async (run: (ctx: { url: string; setAnswer: (answer: Answer) => void; keySet: RemoteKeySet; outcomes: JwksFetchOutcome[] }) => Promise<void>, path = '/jwks') => {
  const jose = await import('jose');
  let answer: Answer = (_req, res) => void res.end('{}');
  const server = createServer((req, res) => answer(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}${path}`;
  const outcomes: JwksFetchOutcome[] = [];
  try {
    let steady = 0;
    const inner = createRemoteKeySet(jose, { url, maxStaleMs: 3_600_000, onFetch: (outcome) => void outcomes.push(outcome), monotonicNow: () => steady });
    // In these tests the wall clock is never set: each call's time moves the monotonic clock as far.
    const keySet = { keysFor: (at: number) => ((steady = at), inner.keysFor(at)) };
    await run({ url, setAnswer: (a) => (answer = a), keySet, outcomes });
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
};

const publicJwk = () => ({ ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES256', use: 'sig' });
const keys: Answer = (_req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [publicJwk()] }));
/** A body that never ends: 64 KiB of spaces after `{"keys":[`, again and again, as fast as the client reads. */
const endless: Answer = (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.write('{"keys":[');
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  const more = () => {
    while (!res.destroyed && res.write(chunk));
    if (!res.destroyed) res.once('drain', more);
  };
  more();
};

describe('createRemoteKeySet: what it reads of an answer', () => {
  it('stops reading a body without end at JWKS_MAX_BODY_BYTES: a failed fetch, the set in hand kept', async () => {
    await withProvider(async ({ setAnswer, keySet, outcomes }) => {
      setAnswer(endless);
      // No set yet: refused, as no answer (before, it read on for the fetch's whole timeout, as fast as it came).
      const at = Date.now();
      await expect(keySet.keysFor(at)).rejects.toMatchObject({ code: 'ERR_JWKS_UNAVAILABLE' });
      expect(outcomes).toEqual([expect.objectContaining({ ok: false, reason: expect.stringMatching(/^body too large/) })]);

      setAnswer(keys);
      const later = at + 10_000;
      await expect(keySet.keysFor(later)).resolves.toMatchObject({ asOf: later });
      setAnswer(endless);
      const stale = later + JWKS_MAX_AGE_MS + JWKS_FETCH_TIMEOUT_MS + 1;
      // Past its minute and a fetch (an idle hub): the token waits for the fetch, and the set is kept when it reads too much.
      await expect(keySet.keysFor(stale)).resolves.toMatchObject({ asOf: later });
      await expect(keySet.keysFor(stale + 1)).resolves.toMatchObject({ asOf: later });
      expect(outcomes.at(-1)).toMatchObject({ ok: false, reason: expect.stringMatching(/^body too large/), keySetAgeMs: stale - later });
    });
  });

  it('refuses a body whose Content-Length says it is too large without reading it, and takes one just under the limit', async () => {
    await withProvider(async ({ setAnswer, keySet, outcomes }) => {
      setAnswer((_req, res) => void res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(JWKS_MAX_BODY_BYTES + 1) }).end());
      await expect(keySet.keysFor(Date.now())).rejects.toMatchObject({ code: 'ERR_JWKS_UNAVAILABLE' });
      expect(outcomes.at(-1)).toMatchObject({ ok: false, reason: expect.stringMatching(/^body too large/) });

      const set = JSON.stringify({ keys: [publicJwk()] });
      setAnswer((_req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end(set + ' '.repeat(JWKS_MAX_BODY_BYTES - set.length)));
      await expect(keySet.keysFor(Date.now() + 10_000)).resolves.toMatchObject({ getKey: expect.any(Function) });
      expect(outcomes.at(-1)).toMatchObject({ ok: true, keys: 1 });
    });
  });
});

describe('createRemoteKeySet: credentials in the URL', () => {
  it('sends user and password written into the URL as HTTP Basic (fetch refuses such a URL: the provider was never reached)', async () => {
    const seen: (string | undefined)[] = [];
    await withProvider(async ({ url, setAnswer }) => {
      setAnswer((req, res) => {
        seen.push(req.headers.authorization);
        keys(req, res);
      });
      const jose = await import('jose');
      const outcomes: JwksFetchOutcome[] = [];
      const withCredentials = url.replace('http://', 'http://hub%40city:p%C3%A5ss%3Aw0rd@');
      const keySet = createRemoteKeySet(jose, { url: withCredentials, maxStaleMs: 3_600_000, onFetch: (outcome) => void outcomes.push(outcome) });
      await expect(keySet.keysFor(Date.now())).resolves.toMatchObject({ getKey: expect.any(Function) });
      expect(outcomes).toEqual([expect.objectContaining({ ok: true, keys: 1 })]);
      expect(seen).toEqual([`Basic ${Buffer.from('hub@city:påss:w0rd', 'utf8').toString('base64')}`]);
    });
  });

  it('does not follow a redirect: the credentials never reach the host it points to', async () => {
    const elsewhere: (string | undefined)[] = [];
    const other = createServer((req, res) => {
      elsewhere.push(req.headers.authorization);
      keys(req, res);
    });
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    try {
      await withProvider(async ({ url, setAnswer }) => {
        const location = `http://localhost:${(other.address() as { port: number }).port}/jwks`;
        setAnswer((_req, res) => void res.writeHead(307, { location }).end());
        const jose = await import('jose');
        const outcomes: JwksFetchOutcome[] = [];
        const keySet = createRemoteKeySet(jose, { url: url.replace('http://', 'http://hub:s3cret@'), maxStaleMs: 3_600_000, onFetch: (outcome) => void outcomes.push(outcome) });
        await expect(keySet.keysFor(Date.now())).rejects.toMatchObject({ code: 'ERR_JWKS_UNAVAILABLE' });
        expect(outcomes).toEqual([expect.objectContaining({ ok: false, reason: 'HTTP 307' })]);
      });
      expect(elsewhere).toEqual([]);
    } finally {
      other.closeAllConnections();
      await new Promise((resolve) => other.close(resolve));
    }
  });

  it("says nothing of the URL's credentials or query in what it reports of a failed fetch", async () => {
    await withProvider(async ({ url, setAnswer }) => {
      const jose = await import('jose');
      const outcomes: JwksFetchOutcome[] = [];
      let at = Date.now();
      const keySet = createRemoteKeySet(jose, {
        url: `${url.replace('http://', 'http://u5er:pa55w0rd@')}?client_secret=qu3rys3cret`, maxStaleMs: 3_600_000, onFetch: (outcome) => void outcomes.push(outcome), monotonicNow: () => at,
      });
      const answers: Answer[] = [
        (_req, res) => void res.writeHead(401, { 'www-authenticate': 'Basic realm="u5er pa55w0rd qu3rys3cret"' }).end('u5er pa55w0rd qu3rys3cret'),
        (req) => void req.socket.destroy(),
        (_req, res) => void res.writeHead(302, { location: 'http://u5er:pa55w0rd@elsewhere/?client_secret=qu3rys3cret' }).end(),
        (_req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end('{"u5er": "pa55w0rd qu3rys3cret"'),
      ];
      for (const answer of answers) {
        setAnswer(answer);
        await expect(keySet.keysFor(at)).rejects.toMatchObject({ code: 'ERR_JWKS_UNAVAILABLE' });
        at += 10_000; // past the retry interval
      }
      expect(outcomes).toHaveLength(answers.length);
      expect(outcomes.every((o) => !o.ok)).toBe(true);
      expect(JSON.stringify(outcomes)).not.toMatch(/u5er|pa55w0rd|qu3rys3cret|127\.0\.0\.1/);
    });
  });
});

describe('createRemoteKeySet: tokens naming kids the set lacks', () => {
  it('fetches the set once for a flood of made-up kids, and not again within JWKS_UNKNOWN_KID_COOLDOWN_MS', async () => {
    await withProvider(async ({ setAnswer, keySet, outcomes }) => {
      setAnswer(keys);
      const at = Date.now();
      const lookUp = async (when: number, kid: string) => (await keySet.keysFor(when)).getKey({ alg: 'ES256', kid }, undefined as never);
      await keySet.keysFor(at);
      expect(outcomes).toHaveLength(1);
      const flood = await Promise.allSettled(Array.from({ length: 200 }, (_, i) => lookUp(at + 1, `made-up-${i}`)));
      expect(flood.every((r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'ERR_JWKS_NO_MATCHING_KEY')).toBe(true);
      expect(outcomes).toHaveLength(2); // one fetch for all 200
      await Promise.allSettled(Array.from({ length: 200 }, (_, i) => lookUp(at + JWKS_UNKNOWN_KID_COOLDOWN_MS, `again-${i}`)));
      expect(outcomes).toHaveLength(2); // within the cooldown: none
      await Promise.allSettled([lookUp(at + 1 + JWKS_UNKNOWN_KID_COOLDOWN_MS, 'later')]);
      expect(outcomes).toHaveLength(3);
    });
  });
});

describe('createRemoteKeySet: a kid the set lacks while the provider cannot be reached', () => {
  it('answers ERR_JWKS_UNAVAILABLE (503) when the fetch for it failed, joins a fetch under way, and in the cooldown answers at once without fetching', async () => {
    await withProvider(async ({ setAnswer, keySet, outcomes }) => {
      setAnswer(keys);
      const at = Date.now();
      const lookUp = async (when: number, kid: string) => (await keySet.keysFor(when)).getKey({ alg: 'ES256', kid }, undefined as never);
      await keySet.keysFor(at);
      // The provider stops answering: a request is held until the test cuts it.
      const held: IncomingMessage[] = [];
      let arrived = (): void => undefined;
      const fetchArrived = new Promise<void>((resolve) => (arrived = resolve));
      setAnswer((req) => {
        held.push(req);
        arrived();
      });
      const first = lookUp(at + 1, 'added-just-before');
      await fetchArrived;
      // Tokens with other kids meanwhile join the fetch under way rather than start their own.
      const joined = Array.from({ length: 50 }, (_, i) => lookUp(at + 2, `made-up-${i}`));
      held.forEach((req) => req.socket.destroy());
      const settled = await Promise.allSettled([first, ...joined]);
      // Before, each was ERR_JWKS_NO_MATCHING_KEY (401): a key the provider added just before its outage threw sign-ins away.
      expect(settled.map((r) => (r.status === 'rejected' ? (r.reason as { code?: string }).code : 'resolved'))).toEqual(Array(51).fill('ERR_JWKS_UNAVAILABLE'));
      expect(held).toHaveLength(1);
      expect(outcomes).toEqual([expect.objectContaining({ ok: true }), expect.objectContaining({ ok: false })]);
      // Within the cooldown (past the retry interval): still no word from the provider, so 503, at once, with no fetch.
      const flood = await Promise.allSettled(Array.from({ length: 200 }, (_, i) => lookUp(at + 1 + JWKS_UNKNOWN_KID_COOLDOWN_MS - 1, `again-${i}`)));
      expect(flood.every((r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'ERR_JWKS_UNAVAILABLE')).toBe(true);
      expect(held).toHaveLength(1);
      expect(outcomes).toHaveLength(2);
      // Past it, the provider answers without the kid: its word, ERR_JWKS_NO_MATCHING_KEY (401), also within the next cooldown.
      setAnswer(keys);
      await expect(lookUp(at + 1 + JWKS_UNKNOWN_KID_COOLDOWN_MS, 'made-up')).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
      expect(outcomes).toHaveLength(3);
      await expect(lookUp(at + 2 + JWKS_UNKNOWN_KID_COOLDOWN_MS, 'made-up-too')).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
      expect(outcomes).toHaveLength(3);
    });
  });
});

describe('createRemoteKeySet: a wall clock set back or forward during an outage', () => {
  const maxStaleMs = 10 * 60_000;
  const down: Answer = (_req, res) => void res.writeHead(503).end();
  /** A key set on a provider answering `answer` (changeable), with a wall clock and a monotonic clock the test moves apart. */
  const withClocks = async (run: (ctx: { setAnswer: (answer: Answer) => void; keySet: RemoteKeySet; outcomes: JwksFetchOutcome[]; clocks: { wall: number; steady: number } }) => Promise<void>) => {
    await withProvider(async ({ url, setAnswer }) => {
      const jose = await import('jose');
      const outcomes: JwksFetchOutcome[] = [];
      const clocks = { wall: Date.now(), steady: 0 };
      const keySet = createRemoteKeySet(jose, { url, maxStaleMs, onFetch: (outcome) => void outcomes.push(outcome), monotonicNow: () => clocks.steady });
      await run({ setAnswer, keySet, outcomes, clocks });
    });
  };

  it('ends the allowance maxStaleMs after the last answer however often the wall clock is set back', async () => {
    await withClocks(async ({ setAnswer, keySet, outcomes, clocks }) => {
      setAnswer(keys);
      await expect(keySet.keysFor(clocks.wall)).resolves.toMatchObject({ asOf: clocks.wall });
      setAnswer(down);
      // Every 30 s an NTP step sets the clock back a minute: before, each step made the set "one to fetch again"
      // and started its allowance anew, so it was used for as long as the steps went on.
      while (clocks.steady + 30_000 < maxStaleMs) {
        clocks.steady += 30_000;
        clocks.wall -= 60_000;
        // Used, and said to be as old as it is (a token verified with it is remembered no longer than the set's minute).
        await expect(keySet.keysFor(clocks.wall)).resolves.toMatchObject({ asOf: clocks.wall - clocks.steady });
      }
      clocks.steady = maxStaleMs + 1;
      clocks.wall -= 60_000;
      await expect(keySet.keysFor(clocks.wall)).rejects.toMatchObject({ code: 'ERR_JWKS_UNAVAILABLE' });
      expect(outcomes.at(-1)).toMatchObject({ ok: false, reason: 'HTTP 503', keySetAgeMs: maxStaleMs + 1, usableForMs: 0 });
    });
  });

  it('keeps the allowance whole when the wall clock is set forward', async () => {
    await withClocks(async ({ setAnswer, keySet, outcomes, clocks }) => {
      setAnswer(keys);
      await keySet.keysFor(clocks.wall);
      setAnswer(down);
      // Two hours forward (past the allowance by the wall clock: before, every token was refused at once).
      clocks.wall += 2 * 3_600_000;
      clocks.steady += JWKS_MAX_AGE_MS + JWKS_FETCH_TIMEOUT_MS + 1;
      await expect(keySet.keysFor(clocks.wall)).resolves.toMatchObject({ asOf: clocks.wall - clocks.steady });
      expect(outcomes.at(-1)).toMatchObject({ ok: false, keySetAgeMs: clocks.steady, usableForMs: maxStaleMs - clocks.steady });
      clocks.steady = maxStaleMs - 1;
      await expect(keySet.keysFor(clocks.wall)).resolves.toMatchObject({ getKey: expect.any(Function) });
    });
  });
});
