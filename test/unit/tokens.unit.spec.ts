jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { createHmac, randomBytes, webcrypto } from 'node:crypto';
import { AuthUnavailableError, InvalidTokenError, JWKS_MAX_AGE_MS, createTokenVerifier, holdsCprNumber, patientSubject, signToken, type JwksFetchOutcome } from '../../src/adapters/auth/tokens';
import { JWKS_FETCH_TIMEOUT_MS, JWKS_RETRY_AFTER_FAILURE_MS, JWKS_UNKNOWN_KID_COOLDOWN_MS } from '../../src/adapters/auth/remote-key-set';
import { fakeDateAt } from '../support/fake-date';

// The bearer-token verifier: what it accepts and refuses, and its cache of verified tokens.
/** An identity provider's JWKS endpoint on loopback, answered by `respond`, for `run`; closed after it. */
const withJwksServer = async (respond: import('node:http').RequestListener, run: (jwksUrl: string) => Promise<void>): Promise<void> => {
  const http = await import('node:http');
  const server = http.createServer(respond);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await run(`http://127.0.0.1:${(server.address() as { port: number }).port}/jwks`);
  } finally {
    server.closeAllConnections(); // jose's fetch keeps its connection alive
    await new Promise((resolve) => server.close(resolve));
  }
};

describe('createTokenVerifier', () => {
  const secret = randomBytes(32);
  const issuer = 'telemed-rts';
  const audience = 'telemed-rts';
  /**
   * ES256 tokens of an operator under `kid`, signed by the key of `signer` (`kid`'s own by default), each with its own
   * jti: a token the verifier remembers is not checked against the JWKS again.
   */
  const es256Minter = (jose: typeof import('jose'), keyOf: (kid: string) => import('node:crypto').KeyObject) => {
    let n = 0;
    return (kid: string, signer = kid): Promise<string> => {
      const now = Math.floor(Date.now() / 1000);
      return new jose.SignJWT({ role: 'operator', jti: String(++n) }).setProtectedHeader({ alg: 'ES256', kid }).setSubject('op').setIssuer(issuer).setAudience(audience)
        .setIssuedAt(now).setExpirationTime(now + 3600).sign(keyOf(signer));
    };
  };
  const sign = (claims: Parameters<typeof signToken>[1], ttlSeconds = 300, key = secret) => signToken(key, claims, { issuer, audience, ttlSeconds });

  it('accepts a valid token and refuses a wrong signature, issuer or audience', async () => {
    const verify = createTokenVerifier({ secret, issuer, audience });
    await expect(verify(await sign({ sub: 'p1', role: 'patient', patient: '251248-1234' }))).resolves.toEqual({ sub: 'p1', role: 'patient', patient: '251248-1234' });
    await expect(verify(await sign({ sub: 'p1', role: 'patient' }, 300, randomBytes(32)))).rejects.toBeInstanceOf(InvalidTokenError);
    await expect(createTokenVerifier({ secret, issuer: 'other', audience })(await sign({ sub: 'o', role: 'operator' }))).rejects.toBeInstanceOf(InvalidTokenError);
    await expect(createTokenVerifier({ secret, issuer, audience: 'other' })(await sign({ sub: 'o', role: 'operator' }))).rejects.toBeInstanceOf(InvalidTokenError);
    await expect(verify('not.a.token')).rejects.toBeInstanceOf(InvalidTokenError);
  });

  it("takes a patient's pseudonymous key (the hub's own tokens) or a CPR number (an identity provider's), never both", async () => {
    const verify = createTokenVerifier({ secret, issuer, audience });
    const patientKey = `p${'0a'.repeat(16)}`;
    await expect(verify(await sign({ sub: 'p1', role: 'patient', patientKey }))).resolves.toEqual({ sub: 'p1', role: 'patient', patientKey });
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const signed = (claims: object) => {
      const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'p1', role: 'patient', iss: issuer, aud: audience, exp: Math.floor(Date.now() / 1000) + 300, ...claims })}`;
      return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
    };
    // Two claims that could name two patients; a key that is no key of ours (a CPR number in its place among them).
    await expect(verify(signed({ patientKey, patient: '251248-1234' }))).rejects.toMatchObject({ reason: 'claims' });
    for (const bad of ['251248-1234', 'p0a0a', `P${'0a'.repeat(16)}`, `p${'0a'.repeat(16)}0`]) await expect(verify(signed({ patientKey: bad }))).rejects.toMatchObject({ reason: 'claims' });
    // An identity provider's CPR number as ten digits is taken; another shape is refused with its reason (it was a
    // patient who silently reached nothing, 403 on every request).
    await expect(verify(signed({ patient: '2512481234' }))).resolves.toMatchObject({ patient: '2512481234' });
    for (const bad of ['25.12.48-1234', '251248 1234', 'CPR 251248-1234', '12345']) await expect(verify(signed({ patient: bad }))).rejects.toMatchObject({ reason: 'claims' });
  });

  it('reuses a verified token for at most maxAgeMs, never past its exp, and forgets the oldest first', async () => {
    let clock = Date.now();
    const verify = createTokenVerifier({ secret, issuer, audience }, { maxAgeMs: 60_000, maxEntries: 2, now: () => clock, monotonicNow: () => clock });
    const token = await sign({ sub: 'c1', role: 'clinician', systemId: 'aarhus' }, 90);
    const claims = await verify(token);
    expect(await verify(token)).toBe(claims); // the same object: not verified again
    clock += 61_000; // past maxAgeMs: verified again (still before exp), a new object
    const again = await verify(token);
    expect(again).toEqual(claims);
    expect(again).not.toBe(claims);
    clock += 31_000; // past exp (90 s): refused, whatever the cache held
    await expect(verify(token)).rejects.toMatchObject({ reason: 'ERR_JWT_EXPIRED' });

    clock = Date.now();
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((sub) => sign({ sub, role: 'operator' })));
    const first = await verify(a!);
    await verify(b!);
    await verify(c!); // a is pushed out (two entries)
    expect(await verify(a!)).not.toBe(first);
  });

  it('refuses a token issued more than a minute in the future, and takes one within the clocks\' skew', async () => {
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const at = Math.floor(Date.now() / 1000);
    const signed = (iat: number) => {
      const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'p1', role: 'operator', iss: issuer, aud: audience, iat, exp: at + 3600 })}`;
      return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
    };
    const verify = createTokenVerifier({ secret, issuer, audience }, { now: () => at * 1000 });
    await expect(verify(signed(at + 600))).rejects.toMatchObject({ reason: 'ERR_JWT_ISSUED_IN_FUTURE' });
    await expect(verify(signed(at + 61))).rejects.toBeInstanceOf(InvalidTokenError);
    await expect(verify(signed(at + 30))).resolves.toMatchObject({ sub: 'p1' });
    await expect(verify(signed(at - 30))).resolves.toMatchObject({ sub: 'p1' });
  });

  it('takes an nbf within the clocks\' skew, refuses a later one as not valid yet, and expires at exp exactly', async () => {
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const at = Math.floor(Date.now() / 1000);
    const signed = (claims: Record<string, number>) => {
      const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'p1', role: 'operator', iss: issuer, aud: audience, exp: at + 3600, ...claims })}`;
      return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
    };
    const verify = createTokenVerifier({ secret, issuer, audience }, { now: () => at * 1000, maxAgeMs: 0 });
    // An identity provider 30 s ahead: iat = nbf = its now (before: 401 with the generic detail for 30 s).
    await expect(verify(signed({ iat: at + 30, nbf: at + 30 }))).resolves.toMatchObject({ sub: 'p1' });
    await expect(verify(signed({ nbf: at + 5 }))).resolves.toMatchObject({ sub: 'p1' });
    await expect(verify(signed({ nbf: at + 120 }))).rejects.toMatchObject({ reason: 'ERR_JWT_NOT_YET_VALID' });
    // The tolerance is not exp's: a token is expired at its exp, as before.
    await expect(verify(signed({ exp: at }))).rejects.toMatchObject({ reason: 'ERR_JWT_EXPIRED' });
    await expect(verify(signed({ exp: at - 30 }))).rejects.toMatchObject({ reason: 'ERR_JWT_EXPIRED' });
    await expect(verify(signed({ exp: at + 1 }))).resolves.toMatchObject({ sub: 'p1' });
  });

  it("stamps iat and exp from the clock the verifier reads (Date.now), not from jose's own", async () => {
    // jose is loaded in the outer realm here (the mock above), so its own clock is the real one while Date is
    // faked: a token stamped by jose would be issued "today", a day after this clock, and be refused as issued in
    // the future (the upgrade tests' hub, on the fixtures' day, refused its own dev-login tokens so).
    const at = Date.parse('2026-12-03T12:00:00Z');
    fakeDateAt(new Date(at).toISOString(), false);
    try {
      const token = await sign({ sub: 'o', role: 'operator' }, 600);
      const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { iat: number; exp: number };
      expect({ iat: payload.iat, exp: payload.exp }).toEqual({ iat: at / 1000, exp: at / 1000 + 600 });
      await expect(createTokenVerifier({ secret, issuer, audience })(token)).resolves.toEqual({ sub: 'o', role: 'operator' });
    } finally {
      jest.useRealTimers();
    }
  });

  it('names a wrong issuer or audience of a token signed right, and keeps the generic code for a bad signature', async () => {
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const at = Math.floor(Date.now() / 1000);
    const signed = (claims: Record<string, unknown>, key = secret) => {
      const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'p1', role: 'operator', iss: issuer, aud: audience, exp: at + 3600, ...claims })}`;
      return `${unsigned}.${createHmac('sha256', key).update(unsigned).digest('base64url')}`;
    };
    const verify = createTokenVerifier({ secret, issuer, audience }, { maxAgeMs: 0 });
    await expect(verify(signed({ iss: 'https://idp.example' }))).rejects.toMatchObject({ reason: 'ERR_JWT_WRONG_ISSUER' });
    await expect(verify(signed({ aud: 'another-api' }))).rejects.toMatchObject({ reason: 'ERR_JWT_WRONG_AUDIENCE' });
    // Signed with another key: the signature fails first, whatever the claims.
    await expect(verify(signed({ iss: 'https://idp.example' }, Buffer.alloc(32, 7)))).rejects.toMatchObject({ reason: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
  });

  it("refuses a token whose sub is a CPR number: the sub is kept in the audit trail, which erasure cannot reach", async () => {
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const signed = (sub: string) => {
      const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, role: 'patient', patient: '251248-1234', iss: issuer, aud: audience, exp: Math.floor(Date.now() / 1000) + 300 })}`;
      return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
    };
    const verify = createTokenVerifier({ secret, issuer, audience });
    // Also the spellings that got through before (yyyymmdd-ssss, an en dash, a letter glued on), as user-2512481234
    // was refused: a CPR number bounded by non-digits, also among other groups of digits (holdsCprNumber).
    for (const sub of ['251248-1234', '2512481234', '251248 1234', '25.12.48.1234', 'patient-251248-1234', '19481225-1234', '251248\u20131234', '2512481234x', 'user-2512481234', 'v2-251248-1234', 'bed 4 251248-1234']) {
      await expect(verify(signed(sub))).rejects.toMatchObject({ reason: 'ERR_SUB_IS_CPR' });
    }
    // Ten digits glued to other digits are no refusal: a refused sub is a user locked out for good (a timestamp, an
    // identity provider's hex id whose digits happen to read as a date).
    for (const sub of ['patient-680e6c16b42d', '12512481234', 'order-202612021030-17', 'auth0|5f2b8c3e12512481234ab9cd', '5f2b8c3e-1234-4a5b-9c8d-123456789012']) {
      await expect(verify(signed(sub))).resolves.toMatchObject({ sub });
    }
    await expect(sign({ sub: '251248-1234', role: 'operator' })).rejects.toThrow('must not be a CPR number');
    // No control characters: NUL failed the audit append on PostgreSQL, a line break split a line where it was shown.
    // Nor a bidirectional override or isolate: the subject is shown in the audit trail, reordered after one.
    for (const sub of ['ops\r\nrole: operator', 'ops\u0000', 'tab\there', 'del\u007f', 'ops-\u202eanna', 'ops-\u2066x\u2069']) await expect(verify(signed(sub))).rejects.toMatchObject({ reason: 'claims' });
  });

  it("refuses a token whose systemId is a CPR number: it goes into the audit trail with the caller's every request", async () => {
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const signed = (systemId: string) => {
      const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'clin-cprsys', role: 'clinician', systemId, iss: issuer, aud: audience, exp: Math.floor(Date.now() / 1000) + 300 })}`;
      return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
    };
    const verify = createTokenVerifier({ secret, issuer, audience });
    for (const systemId of ['251248-1234', '2512481234', '19481225-1234', 'sys-2512481234', '2512481234x']) {
      await expect(verify(signed(systemId))).rejects.toMatchObject({ reason: 'ERR_SYSTEM_ID_IS_CPR' });
    }
    // Ids with digits that hold no CPR number's date, or ten digits only inside a longer run, are taken (the claim's
    // own form: 2-32 of a-z 0-9 -).
    for (const systemId of ['chengdu', 'leshan-2', 'site-12345678-1234', 'hub-991348-1234', '12512481234', 'site-202612021030']) await expect(verify(signed(systemId))).resolves.toMatchObject({ systemId });
    await expect(sign({ sub: 'ops', role: 'system', systemId: '251248-1234' })).rejects.toThrow("systemId must not be a CPR number");
  });

  it('tells CPR-shaped subjects from ids that only hold digits', () => {
    for (const cpr of ['251248-1234', '2512481234', '251248.1234', '25 12 48 1234', 'x:010203-2345', '251248_1234', '251248:1234', '25.12.48-1234', 'x251248-1234']) expect(holdsCprNumber(cpr)).toBe(true);
    // UUIDs, long numeric ids of identity providers, dates that are no day/month pair, short numbers
    // A UUID whose first group ends in a date-shaped run of six digits before the dash: a letter, not a boundary.
    for (const other of ['5f2b8c3e-1234-4a5b-9c8d-123456789012', 'ab010203-4567-4abc-8def-0123456789ab', '112233445566778899001', '12345678-1234', '991348-1234', '251248-123', 'ops', 'dr-jensen']) {
      expect(holdsCprNumber(other)).toBe(false);
    }
  });

  it("never takes a patient's own pseudonymous subject for a CPR number (dev-login answered 500 for one such patient)", () => {
    // patientSubject keeps 12 hex digits of the key: two letters and ten date-shaped digits were refused before.
    for (const key of ['pab0102031234cdef', 'p0102031234abcdef', 'p010203123456cdef', 'p9f010203123456ab']) expect(holdsCprNumber(patientSubject(key))).toBe(false);
    for (let i = 0; i < 2000; i++) expect(holdsCprNumber(patientSubject(`p${randomBytes(16).toString('hex')}`))).toBe(false);
  });

  it('never remembers a refusal', async () => {
    let clock = Date.now();
    const verify = createTokenVerifier({ secret, issuer, audience }, { now: () => clock });
    const early = await sign({ sub: 'x', role: 'operator' });
    const forged = `${early.split('.').slice(0, 2).join('.')}.${'A'.repeat(43)}`;
    await expect(verify(forged)).rejects.toBeInstanceOf(InvalidTokenError);
    await expect(verify(forged)).rejects.toBeInstanceOf(InvalidTokenError);
    clock += 1;
    await expect(verify(early)).resolves.toMatchObject({ sub: 'x' });
  });
  it('refuses another HMAC algorithm and an unsigned token made with the same secret', async () => {
    const verify = createTokenVerifier({ secret, issuer, audience });
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const body = b64({ sub: 'p1', role: 'operator', iss: issuer, aud: audience, exp: Math.floor(Date.now() / 1000) + 300 });
    const hs512 = `${b64({ alg: 'HS512', typ: 'JWT' })}.${body}`;
    await expect(verify(`${hs512}.${createHmac('sha512', secret).update(hs512).digest('base64url')}`)).rejects.toBeInstanceOf(InvalidTokenError);
    await expect(verify(`${b64({ alg: 'none', typ: 'JWT' })}.${body}.`)).rejects.toBeInstanceOf(InvalidTokenError);
    const hs256 = `${b64({ alg: 'HS256', typ: 'JWT' })}.${body}`;
    await expect(verify(`${hs256}.${createHmac('sha256', secret).update(hs256).digest('base64url')}`)).resolves.toMatchObject({ sub: 'p1' });
  });

  it("stops taking a key its identity provider's JWKS dropped within a minute (README), not at jose's 10-minute refresh", async () => {
    const jose = await import('jose');
    const { generateKeyPairSync } = await import('node:crypto');
    const pairs = ['old', 'new'].map((kid) => ({ kid, ...generateKeyPairSync('ec', { namedCurve: 'P-256' }) }));
    let published = pairs.map((p) => ({ ...p.publicKey.export({ format: 'jwk' }), kid: p.kid, alg: 'ES256', use: 'sig' }));
    await withJwksServer((_req, res) => res.setHeader('content-type', 'application/json').end(JSON.stringify({ keys: published })), async (jwksUrl) => {
      let clock = Date.now();
      const verify = createTokenVerifier({ jwksUrl, issuer, audience }, { now: () => clock, monotonicNow: () => clock });
      const mint = es256Minter(jose, (kid) => pairs.find((p) => p.kid === kid)!.privateKey);
      const remembered = await mint('old');
      await expect(verify(remembered)).resolves.toMatchObject({ sub: 'op' });
      await expect(verify(await mint('new'))).resolves.toMatchObject({ sub: 'op' });
      published = published.filter((k) => k.kid !== 'old'); // the identity provider drops the old key (rotation, a leak)
      clock += 61_000;
      // The minute's refetch runs in the background: this token is verified with the key set in hand meanwhile.
      await expect(verify(await mint('new'))).resolves.toMatchObject({ sub: 'op' });
      clock += JWKS_FETCH_TIMEOUT_MS; // a minute plus one fetch: the refetch has answered, or is waited for
      await expect(verify(await mint('old'))).rejects.toBeInstanceOf(InvalidTokenError);
      await expect(verify(remembered)).rejects.toBeInstanceOf(InvalidTokenError);
      await expect(verify(await mint('new'))).resolves.toMatchObject({ sub: 'op' });
    });
  });

  it('remembers a verified token for maxAgeMs and its key set\'s minute on the steady clock, however often the wall clock is set back a little', async () => {
    const jose = await import('jose');
    const { generateKeyPairSync } = await import('node:crypto');
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    let published = [{ ...pair.publicKey.export({ format: 'jwk' }), kid: 'old', alg: 'ES256', use: 'sig' }];
    await withJwksServer((_req, res) => res.setHeader('content-type', 'application/json').end(JSON.stringify({ keys: published })), async (jwksUrl) => {
      const start = Date.now();
      let clock = start;
      let steady = 0; // a process that has just started: performance.now near 0
      const verifyJwks = createTokenVerifier({ jwksUrl, issuer, audience }, { now: () => clock, monotonicNow: () => steady });
      const verifyHs = createTokenVerifier({ secret, issuer, audience }, { now: () => clock, monotonicNow: () => steady });
      const now = Math.floor(start / 1000);
      const token = await new jose.SignJWT({ role: 'operator' }).setProtectedHeader({ alg: 'ES256', kid: 'old' }).setSubject('op').setIssuer(issuer).setAudience(audience)
        .setIssuedAt(now).setExpirationTime(now + 7200).sign(pair.privateKey);
      const own = await sign({ sub: 'c1', role: 'operator' }, 7200);
      await expect(verifyJwks(token)).resolves.toMatchObject({ sub: 'op' });
      const ownClaims = await verifyHs(own);
      published = []; // the identity provider drops the key (a leak)
      // Every 25 s an NTP step sets the wall clock 20 s back: never behind the time the tokens were verified, so each
      // step kept them remembered 20 s longer (by the wall clock: here 5 minutes where a minute was meant).
      for (let step = 0; step < 2; step += 1) {
        steady += 25_000;
        clock += 25_000 - 20_000;
        expect(await verifyHs(own)).toBe(ownClaims); // within the minute: remembered
      }
      steady += JWKS_MAX_AGE_MS + JWKS_FETCH_TIMEOUT_MS - 50_000;
      clock += 5_000;
      // A minute and a fetch after on the steady clock: the dropped key's token is refused, the own one verified again.
      await expect(verifyJwks(token)).rejects.toBeInstanceOf(InvalidTokenError);
      const again = await verifyHs(own);
      expect(again).toEqual(ownClaims);
      expect(again).not.toBe(ownClaims);
    });
  });

  it('takes tokens under a kid its identity provider lists for two keys (a kid reused in a rotation), by the key that signed them', async () => {
    const jose = await import('jose');
    const { generateKeyPairSync } = await import('node:crypto');
    const [old, next, stranger] = [0, 1, 2].map(() => generateKeyPairSync('ec', { namedCurve: 'P-256' }));
    const published = [old!, next!].map((p) => ({ ...p.publicKey.export({ format: 'jwk' }), kid: 'signing', alg: 'ES256', use: 'sig' }));
    await withJwksServer((_req, res) => res.setHeader('content-type', 'application/json').end(JSON.stringify({ keys: published })), async (jwksUrl) => {
      const verify = createTokenVerifier({ jwksUrl, issuer, audience });
      const now = Math.floor(Date.now() / 1000);
      const mint = (key: typeof old) => new jose.SignJWT({ role: 'operator' }).setProtectedHeader({ alg: 'ES256', kid: 'signing' }).setSubject('op').setIssuer(issuer)
        .setAudience(audience).setIssuedAt(now).setExpirationTime(now + 3600).sign(key!.privateKey);
      await expect(verify(await mint(old))).resolves.toMatchObject({ sub: 'op' });
      await expect(verify(await mint(next))).resolves.toMatchObject({ sub: 'op' });
      // A key the provider does not list is refused under that kid all the same, as a wrong signature.
      await expect(verify(await mint(stranger))).rejects.toMatchObject({ reason: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
    });
  });

  it('checks each key listed under a shared kid with the alg the hub takes: no key of another type, no public key as an HMAC secret', async () => {
    const jose = await import('jose');
    const { createHmac, generateKeyPairSync } = await import('node:crypto');
    const [ec1, ec2] = [0, 1].map(() => generateKeyPairSync('ec', { namedCurve: 'P-256' }));
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const octSecret = randomBytes(32);
    // One kid for two EC keys, an RSA key without alg (RS256 and PS256 both) and a symmetric key a careless provider lists.
    const published = [
      ...[ec1!, ec2!].map((p) => ({ ...p.publicKey.export({ format: 'jwk' }), kid: 'signing', alg: 'ES256' })),
      { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'signing' },
      { kty: 'oct', k: octSecret.toString('base64url'), kid: 'signing', alg: 'HS256' },
    ];
    await withJwksServer((_req, res) => res.setHeader('content-type', 'application/json').end(JSON.stringify({ keys: published })), async (jwksUrl) => {
      const verify = createTokenVerifier({ jwksUrl, issuer, audience }, { maxAgeMs: 0 });
      const now = Math.floor(Date.now() / 1000);
      const claims = { role: 'operator', sub: 'op', iss: issuer, aud: audience, iat: now, exp: now + 3600 };
      const mint = (alg: string, key: Parameters<InstanceType<typeof jose.SignJWT>['sign']>[0]) => new jose.SignJWT(claims).setProtectedHeader({ alg, kid: 'signing' }).sign(key);
      await expect(verify(await mint('ES256', ec2!.privateKey))).resolves.toMatchObject({ sub: 'op' });
      await expect(verify(await mint('RS256', rsa.privateKey))).resolves.toMatchObject({ sub: 'op' });
      await expect(verify(await mint('PS256', rsa.privateKey))).resolves.toMatchObject({ sub: 'op' });
      // An ES256 token signed with the RSA key is tried against the EC keys only, and holds with none.
      const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const es256Header = b64({ alg: 'ES256', kid: 'signing' });
      const body = b64(claims);
      const { createSign } = await import('node:crypto');
      const rsaSigned = `${es256Header}.${body}.${createSign('sha256').update(`${es256Header}.${body}`).sign(rsa.privateKey).toString('base64url')}`;
      await expect(verify(rsaSigned)).rejects.toMatchObject({ reason: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
      // HS256 with the listed symmetric key, or with the RSA public key (PEM or JWK) as the HMAC secret: refused.
      const hs256Header = b64({ alg: 'HS256', kid: 'signing' });
      const hmacWith = (secret: Buffer | string) => `${hs256Header}.${body}.${createHmac('sha256', secret).update(`${hs256Header}.${body}`).digest('base64url')}`;
      for (const secret of [octSecret, rsa.publicKey.export({ format: 'pem', type: 'spki' }) as string, JSON.stringify(rsa.publicKey.export({ format: 'jwk' }))]) {
        await expect(verify(hmacWith(secret))).rejects.toMatchObject({ reason: 'ERR_JOSE_ALG_NOT_ALLOWED' });
      }
    });
  });

  it('makes the first token after an idle spell wait for the key set: a key dropped meanwhile verifies none', async () => {
    const jose = await import('jose');
    const { generateKeyPairSync } = await import('node:crypto');
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    let published = [{ ...pair.publicKey.export({ format: 'jwk' }), kid: 'old', alg: 'ES256', use: 'sig' }];
    await withJwksServer((_req, res) => res.setHeader('content-type', 'application/json').end(JSON.stringify({ keys: published })), async (jwksUrl) => {
      let clock = Date.now();
      const verify = createTokenVerifier({ jwksUrl, issuer, audience }, { now: () => clock, monotonicNow: () => clock });
      const mintUnder = es256Minter(jose, () => pair.privateKey);
      const mint = () => mintUnder('old');
      await expect(verify(await mint())).resolves.toMatchObject({ sub: 'op' });
      published = [];
      clock += JWKS_MAX_AGE_MS + JWKS_FETCH_TIMEOUT_MS; // no token came in the minute and the fetch's time after it
      await expect(verify(await mint())).rejects.toBeInstanceOf(InvalidTokenError);
    });
  });

  it('stops the tokens of a key the JWKS dropped a minute and a fetch after, remembered or not, with the wall clock set back meanwhile', async () => {
    const jose = await import('jose');
    const { generateKeyPairSync } = await import('node:crypto');
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    let published = [{ ...pair.publicKey.export({ format: 'jwk' }), kid: 'old', alg: 'ES256', use: 'sig' }];
    await withJwksServer((_req, res) => res.setHeader('content-type', 'application/json').end(JSON.stringify({ keys: published })), async (jwksUrl) => {
      const start = Date.now();
      let clock = start;
      let steady = 0; // the monotonic clock, which no NTP step moves
      const verify = createTokenVerifier({ jwksUrl, issuer, audience }, { now: () => clock, monotonicNow: () => steady });
      const now = Math.floor(start / 1000);
      const token = await new jose.SignJWT({ role: 'operator' }).setProtectedHeader({ alg: 'ES256', kid: 'old' }).setSubject('op').setIssuer(issuer).setAudience(audience)
        .setIssuedAt(now - 7200).setExpirationTime(now + 7200).sign(pair.privateKey);
      await expect(verify(token)).resolves.toMatchObject({ sub: 'op' });
      published = []; // the identity provider drops the key (a leak)
      clock = start - 3_600_000; // an NTP step sets the clock an hour back
      steady += 1_000;
      // Verified again (a remembered token is not kept across a step back), with the key set in hand: a second old.
      await expect(verify(token)).resolves.toMatchObject({ sub: 'op' });
      steady += JWKS_MAX_AGE_MS + JWKS_FETCH_TIMEOUT_MS;
      clock += JWKS_MAX_AGE_MS + JWKS_FETCH_TIMEOUT_MS; // the wall clock still an hour behind
      await expect(verify(token)).rejects.toBeInstanceOf(InvalidTokenError);
      clock = start + 1_000; // and the entry of the token refused meanwhile is gone, not taken again
      await expect(verify(token)).rejects.toBeInstanceOf(InvalidTokenError);
    });
  });

  it('keeps verifying with the key set in hand while a slow identity provider is asked again, and remembers none of those tokens past its minute', async () => {
    const jose = await import('jose');
    const { generateKeyPairSync } = await import('node:crypto');
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    let published = [{ ...pair.publicKey.export({ format: 'jwk' }), kid: 'old', alg: 'ES256', use: 'sig' }];
    let held: (() => void)[] | null = null; // while set, the identity provider answers only when released
    let onHeld = (): void => undefined;
    const fetchHeld = new Promise<void>((resolve) => (onHeld = resolve));
    await withJwksServer((_req, res) => {
      // The key set as it is when the answer goes out (the provider is slow to send it).
      const answer = () => res.setHeader('content-type', 'application/json').end(JSON.stringify({ keys: published }));
      if (held) {
        held.push(answer);
        onHeld();
      } else answer();
    }, async (jwksUrl) => {
      let clock = Date.now();
      const verify = createTokenVerifier({ jwksUrl, issuer, audience }, { now: () => clock, monotonicNow: () => clock });
      const mintUnder = es256Minter(jose, () => pair.privateKey);
      const mint = () => mintUnder('old');
      await expect(verify(await mint())).resolves.toMatchObject({ sub: 'op' });
      clock += 61_000;
      published = []; // the identity provider drops the key (a leak), and is slow to answer
      held = [];
      // Starts the refetch in the background, and does not wait for the slow answer: verified with the key set in hand.
      await expect(verify(await mint())).resolves.toMatchObject({ sub: 'op' });
      await fetchHeld;
      const meanwhile = await mint();
      // Verified with the key set the hub has until the answer comes: taken, but not remembered past that key set's minute.
      await expect(verify(meanwhile)).resolves.toMatchObject({ sub: 'op' });
      const answers: (() => void)[] = held;
      held = null;
      for (const answer of answers) answer();
      clock += JWKS_FETCH_TIMEOUT_MS; // a minute plus one fetch after the key set in hand was fetched: the answer decides
      await expect(verify(meanwhile)).rejects.toBeInstanceOf(InvalidTokenError);
      await expect(verify(await mint())).rejects.toBeInstanceOf(InvalidTokenError);
    });
  });

  it("takes a key its identity provider just added at once, also right after the minute's refetch, and a made-up kid fetches the JWKS once", async () => {
    const jose = await import('jose');
    const { generateKeyPairSync } = await import('node:crypto');
    const pairs = ['old', 'new'].map((kid) => ({ kid, ...generateKeyPairSync('ec', { namedCurve: 'P-256' }) }));
    const jwk = (kid: string) => ({ ...pairs.find((p) => p.kid === kid)!.publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' });
    let published = [jwk('old')];
    let fetches = 0;
    await withJwksServer((_req, res) => {
      fetches += 1;
      res.setHeader('content-type', 'application/json').end(JSON.stringify({ keys: published }));
    }, async (jwksUrl) => {
      let clock = Date.now();
      const verify = createTokenVerifier({ jwksUrl, issuer, audience }, { now: () => clock, monotonicNow: () => clock });
      const mint = es256Minter(jose, (kid) => pairs.find((p) => p.kid === kid)!.privateKey);
      await expect(verify(await mint('old'))).resolves.toMatchObject({ sub: 'op' });
      clock += 61_000;
      await expect(verify(await mint('old'))).resolves.toMatchObject({ sub: 'op' }); // starts the minute's refetch
      clock += JWKS_FETCH_TIMEOUT_MS; // which has answered by now, or is waited for
      await expect(verify(await mint('old'))).resolves.toMatchObject({ sub: 'op' });
      expect(fetches).toBe(2);
      published = [jwk('old'), jwk('new')]; // the identity provider adds a key and signs with it at once
      await expect(verify(await mint('new'))).resolves.toMatchObject({ sub: 'op' });
      expect(fetches).toBe(3);
      // Tokens naming kids the key set lacks (made up, or a key not published yet) fetch it once per 30 s: none now,
      // so soon after the last such fetch, and one after.
      clock += 1_000;
      await expect(verify(await mint('made-up', 'old'))).rejects.toMatchObject({ reason: 'ERR_JWKS_NO_MATCHING_KEY' });
      expect(fetches).toBe(3);
      clock += 30_000;
      for (let i = 0; i < 5; i += 1) await expect(verify(await mint(`made-up-${i}`, 'old'))).rejects.toMatchObject({ reason: 'ERR_JWKS_NO_MATCHING_KEY' });
      expect(fetches).toBe(4);
      await Promise.all([1, 2, 3].map(async () => expect(verify(await mint('elsewhere', 'old'))).rejects.toMatchObject({ reason: 'ERR_JWKS_NO_MATCHING_KEY' })));
      expect(fetches).toBe(4);
    });
  });

  it('imports the secret once, not once per token', async () => {
    const tokens = await Promise.all(['a', 'b', 'c'].map((sub) => sign({ sub, role: 'operator' })));
    const importKey = jest.spyOn(webcrypto.subtle, 'importKey');
    try {
      const verify = createTokenVerifier({ secret, issuer, audience });
      for (const token of tokens) await expect(verify(token)).resolves.toMatchObject({ role: 'operator' });
      expect(importKey).toHaveBeenCalledTimes(1);
    } finally {
      importKey.mockRestore();
    }
  });
});

// The identity provider's key set while the provider cannot be reached, and what counts as its answer.
describe('createTokenVerifier with an identity provider that fails', () => {
  const issuer = 'telemed-rts';
  const audience = 'telemed-rts';
  type Provider = { keys: object[]; answer: 'keys' | 'down' | 'reset' | 'html' | 'not-a-key-set' | 'redirect' };
  /** A provider answering as `provider` says, and a verifier of its tokens on the clock `Date.now` (faked below: jose's own clock too). */
  const withProvider = async (run: (ctx: { provider: Provider; verify: (token: string) => Promise<unknown>; mint: (kid: string) => Promise<string>; outcomes: JwksFetchOutcome[]; nextFetch: () => Promise<JwksFetchOutcome> }) => Promise<void>, jwksMaxStaleMs?: number) => {
    const jose = await import('jose');
    const { generateKeyPairSync } = await import('node:crypto');
    const pairs = ['old', 'new'].map((kid) => ({ kid, ...generateKeyPairSync('ec', { namedCurve: 'P-256' }) }));
    const provider: Provider = { keys: pairs.map((p) => ({ ...p.publicKey.export({ format: 'jwk' }), kid: p.kid, alg: 'ES256', use: 'sig' })), answer: 'keys' };
    const outcomes: JwksFetchOutcome[] = [];
    let waiting: ((outcome: JwksFetchOutcome) => void)[] = [];
    await withJwksServer((req, res) => {
      if (provider.answer === 'reset') return void req.socket.destroy();
      if (provider.answer === 'down') return void res.writeHead(503, { 'content-type': 'application/json' }).end('{"keys":[]}');
      if (provider.answer === 'redirect') return void res.writeHead(302, { location: '/elsewhere' }).end();
      res.setHeader('content-type', provider.answer === 'html' ? 'text/html' : 'application/json');
      res.end(provider.answer === 'html' ? '<html>maintenance</html>' : JSON.stringify(provider.answer === 'not-a-key-set' ? { error: 'maintenance' } : { keys: provider.keys }));
    }, async (jwksUrl) => {
      let n = 0;
      const verify = createTokenVerifier({
        jwksUrl, issuer, audience, ...(jwksMaxStaleMs === undefined ? {} : { jwksMaxStaleMs }),
        onJwksFetch: (outcome) => {
          outcomes.push(outcome);
          const woken = waiting;
          waiting = [];
          for (const wake of woken) wake(outcome);
        },
        // The still Date that advance() moves stands for the monotonic clock too: no wall-clock step in these tests.
      }, { monotonicNow: () => Date.now() });
      const mint = (kid: string) => {
        const now = Math.floor(Date.now() / 1000);
        return new jose.SignJWT({ role: 'operator', jti: String(++n) }).setProtectedHeader({ alg: 'ES256', kid }).setSubject('op').setIssuer(issuer).setAudience(audience)
          .setIssuedAt(now).setExpirationTime(now + 7 * 86_400).sign(pairs.find((p) => p.kid === kid)!.privateKey);
      };
      await run({ provider, verify, mint, outcomes, nextFetch: () => new Promise((resolve) => waiting.push(resolve)) });
    });
  };
  const advance = (ms: number) => jest.setSystemTime(Date.now() + ms);
  // jose runs in the host's realm (jest.mock above), with the host's Date, which jest's fake timers do not reach: moved
  // with this test's, so jose's own clock (its 10-minute cacheMaxAge) passes the outages below too.
  const hostDate = (process as unknown as { getBuiltinModule(id: string): typeof import('node:vm') }).getBuiltinModule('node:vm').runInThisContext('Date') as DateConstructor;
  const hostNow = hostDate.now;
  beforeEach(() => {
    fakeDateAt(new Date().toISOString(), false); // still: the times below are exact
    hostDate.now = () => Date.now();
  });
  afterEach(() => {
    hostDate.now = hostNow;
    jest.useRealTimers();
  });

  it('keeps clinicians working through an outage of the identity provider for an hour (default) after its last answer, then refuses every token', async () => {
    await withProvider(async ({ provider, verify, mint, outcomes }) => {
      await expect(verify(await mint('old'))).resolves.toMatchObject({ sub: 'op' });
      provider.answer = 'down';
      advance(11 * 60_000); // past jose's own 10 minutes (cacheMaxAge), which refused every token
      await expect(verify(await mint('old'))).resolves.toMatchObject({ sub: 'op' });
      expect(outcomes.at(-1)).toMatchObject({ ok: false, reason: 'HTTP 503', keySetAgeMs: 11 * 60_000, usableForMs: 49 * 60_000 });
      provider.answer = 'reset'; // no answer at all
      advance(48 * 60_000);
      await expect(verify(await mint('old'))).resolves.toMatchObject({ sub: 'op' });
      expect(outcomes.at(-1)).toMatchObject({ ok: false, reason: expect.stringMatching(/^(ECONNRESET|UND_ERR_SOCKET|unreachable)$/) });
      advance(60_000 + JWKS_RETRY_AFTER_FAILURE_MS); // an hour and more since the last answer
      await expect(verify(await mint('old'))).rejects.toMatchObject({ reason: 'ERR_JWKS_UNAVAILABLE' });
      await expect(verify(await mint('new'))).rejects.toMatchObject({ reason: 'ERR_JWKS_UNAVAILABLE' });
      // The provider answers again: its answer is taken at once (with the next try, JWKS_RETRY_AFTER_FAILURE_MS on).
      provider.answer = 'keys';
      provider.keys = provider.keys.filter((k) => (k as { kid: string }).kid !== 'old');
      advance(JWKS_RETRY_AFTER_FAILURE_MS);
      await expect(verify(await mint('new'))).resolves.toMatchObject({ sub: 'op' });
      expect(outcomes.at(-1)).toMatchObject({ ok: true, keys: 1, afterFailures: true });
      await expect(verify(await mint('old'))).rejects.toBeInstanceOf(InvalidTokenError);
    });
  });

  it("takes the provider's first answer after an outage at once: a key it dropped meanwhile stops verifying", async () => {
    await withProvider(async ({ provider, verify, mint, nextFetch }) => {
      await expect(verify(await mint('old'))).resolves.toMatchObject({ sub: 'op' });
      provider.answer = 'down';
      advance(20 * 60_000);
      await expect(verify(await mint('old'))).resolves.toMatchObject({ sub: 'op' }); // on the key set of 20 minutes ago
      provider.answer = 'keys';
      provider.keys = provider.keys.filter((k) => (k as { kid: string }).kid !== 'old');
      advance(JWKS_RETRY_AFTER_FAILURE_MS);
      const answered = nextFetch();
      await expect(verify(await mint('old'))).resolves.toMatchObject({ sub: 'op' }); // the fetch runs in the background
      await expect(answered).resolves.toMatchObject({ ok: true, keys: 1 });
      await expect(verify(await mint('old'))).rejects.toBeInstanceOf(InvalidTokenError);
      await expect(verify(await mint('new'))).resolves.toMatchObject({ sub: 'op' });
    });
  });

  it('honours a shorter allowance (RTS_AUTH_JWKS_MAX_STALE_SECONDS)', async () => {
    await withProvider(async ({ provider, verify, mint }) => {
      await expect(verify(await mint('old'))).resolves.toMatchObject({ sub: 'op' });
      provider.answer = 'down';
      advance(4 * 60_000);
      await expect(verify(await mint('old'))).resolves.toMatchObject({ sub: 'op' });
      advance(60_000 + JWKS_RETRY_AFTER_FAILURE_MS);
      await expect(verify(await mint('old'))).rejects.toMatchObject({ reason: 'ERR_JWKS_UNAVAILABLE' });
    }, 5 * 60_000);
  });

  it.each(['down', 'reset', 'html', 'not-a-key-set', 'redirect'] as const)('takes a provider answering %s as unreachable, keeping its key set, not as one without keys', async (answer) => {
    await withProvider(async ({ provider, verify, mint, outcomes }) => {
      await expect(verify(await mint('old'))).resolves.toMatchObject({ sub: 'op' });
      provider.answer = answer;
      advance(JWKS_MAX_AGE_MS + JWKS_FETCH_TIMEOUT_MS);
      await expect(verify(await mint('old'))).resolves.toMatchObject({ sub: 'op' });
      expect(outcomes.at(-1)).toMatchObject({ ok: false });
    });
  });

  it('takes an answer with no keys as the provider revoking every key: every token is refused', async () => {
    await withProvider(async ({ provider, verify, mint, outcomes }) => {
      await expect(verify(await mint('old'))).resolves.toMatchObject({ sub: 'op' });
      provider.keys = [];
      advance(JWKS_MAX_AGE_MS + JWKS_FETCH_TIMEOUT_MS);
      await expect(verify(await mint('old'))).rejects.toBeInstanceOf(InvalidTokenError);
      expect(outcomes.at(-1)).toMatchObject({ ok: true, keys: 0 });
    });
  });

  it('refuses at once (401, no fetch) a token no key could make valid, also while no key set can be used', async () => {
    await withProvider(async ({ provider, verify, mint, outcomes }) => {
      provider.answer = 'down';
      const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const claims = b64({ sub: 'op', role: 'operator', iss: issuer, aud: audience, exp: Math.floor(Date.now() / 1000) + 300 });
      const good = await mint('old');
      const refused: [string, string][] = [
        ['not.a.token', 'ERR_JWS_INVALID'],
        ['garbage', 'ERR_JWS_INVALID'],
        [`${good}.extra`, 'ERR_JWS_INVALID'],
        [`${b64({ kid: 'old' })}.${claims}.sig`, 'ERR_JWS_INVALID'], // no alg
        // An HMAC with the provider's public key as its secret (alg confusion), and an unsigned token: no key is looked up.
        [`${b64({ alg: 'HS256', kid: 'old' })}.${claims}.c2ln`, 'ERR_JOSE_ALG_NOT_ALLOWED'],
        [`${b64({ alg: 'none' })}.${claims}.`, 'ERR_JOSE_ALG_NOT_ALLOWED'],
        [`${good.split('.')[0]}.bm90IGpzb24.${good.split('.')[2]}`, 'ERR_JWT_INVALID'], // payload not JSON
        [`${good.split('.')[0]}.${b64({ sub: 'op', role: 'operator', iss: issuer, aud: audience, exp: Math.floor(Date.now() / 1000) - 1 })}.${good.split('.')[2]}`, 'ERR_JWT_EXPIRED'],
      ];
      for (const [token, reason] of refused) {
        // Before, each waited for a fetch of the key set (up to 5 s) and answered 503 auth_unavailable: "keep it and retry".
        await expect(verify(token)).rejects.toBeInstanceOf(InvalidTokenError);
        await expect(verify(token)).rejects.toMatchObject({ reason });
      }
      expect(outcomes).toEqual([]);
      // A token that may be good is not judged without a key set: 503, after a fetch.
      await expect(verify(good)).rejects.toBeInstanceOf(AuthUnavailableError);
      expect(outcomes).toHaveLength(1);
    });
  });

  it("answers 503, not 401, for a key the provider added just before it went down: its fetch failed, the hub cannot tell", async () => {
    await withProvider(async ({ provider, verify, mint, outcomes }) => {
      const published = provider.keys;
      provider.keys = published.filter((k) => (k as { kid: string }).kid === 'old');
      await expect(verify(await mint('old'))).resolves.toMatchObject({ sub: 'op' });
      // The provider adds 'new', signs a patient's token with it, and goes down before the hub has fetched it.
      provider.keys = published;
      provider.answer = 'down';
      advance(1_000);
      // Before, 401 ERR_JWKS_NO_MATCHING_KEY: the patient page threw the sign-in away for the provider's outage.
      await expect(verify(await mint('new'))).rejects.toBeInstanceOf(AuthUnavailableError);
      expect(outcomes).toEqual([expect.objectContaining({ ok: true }), expect.objectContaining({ ok: false, reason: 'HTTP 503' })]);
      // Within the unknown-kid cooldown of that failed fetch: still 503 (still no word from the provider), without a fetch.
      for (const wait of [1, JWKS_RETRY_AFTER_FAILURE_MS, JWKS_UNKNOWN_KID_COOLDOWN_MS - JWKS_RETRY_AFTER_FAILURE_MS - 2]) {
        advance(wait);
        await expect(verify(await mint('new'))).rejects.toBeInstanceOf(AuthUnavailableError);
      }
      expect(outcomes).toHaveLength(2);
      await expect(verify(await mint('old'))).resolves.toMatchObject({ sub: 'op' }); // the set in hand still serves its keys
      // Past the cooldown: fetched again; the provider answers, and the token is taken.
      provider.answer = 'keys';
      advance(1);
      await expect(verify(await mint('new'))).resolves.toMatchObject({ sub: 'op' });
      expect(outcomes.at(-1)).toMatchObject({ ok: true, keys: 2, afterFailures: true });
    });
  });

  it('answers 401 for a kid the provider, asked, does not list, also within the cooldown; 503 once a later fetch has failed', async () => {
    await withProvider(async ({ provider, verify, mint, outcomes }) => {
      const published = provider.keys;
      provider.keys = published.filter((k) => (k as { kid: string }).kid === 'old');
      await expect(verify(await mint('old'))).resolves.toMatchObject({ sub: 'op' });
      advance(1_000);
      await expect(verify(await mint('new'))).rejects.toMatchObject({ reason: 'ERR_JWKS_NO_MATCHING_KEY' });
      expect(outcomes).toHaveLength(2);
      advance(JWKS_UNKNOWN_KID_COOLDOWN_MS - 1); // within the cooldown of that answered fetch: 401 without a fetch
      await expect(verify(await mint('new'))).rejects.toMatchObject({ reason: 'ERR_JWKS_NO_MATCHING_KEY' });
      expect(outcomes).toHaveLength(2);
      // The provider goes down; the minute's refetch fails: within its retry interval an unknown kid is 503 at once.
      provider.answer = 'down';
      advance(JWKS_MAX_AGE_MS);
      await expect(verify(await mint('old'))).resolves.toMatchObject({ sub: 'op' });
      expect(outcomes.at(-1)).toMatchObject({ ok: false });
      await expect(verify(await mint('new'))).rejects.toBeInstanceOf(AuthUnavailableError);
      expect(outcomes).toHaveLength(3);
    });
  });

  it('refuses tokens while no key set was ever fetched, trying again at most once per retry interval', async () => {
    let fetches = 0;
    await withProvider(async ({ provider, verify, mint, outcomes }) => {
      provider.answer = 'down';
      // Not an InvalidTokenError: the token was not judged (HTTP answers 503 auth_unavailable, not 401).
      await expect(verify(await mint('old'))).rejects.toBeInstanceOf(AuthUnavailableError);
      await expect(verify(await mint('old'))).rejects.toMatchObject({ reason: 'ERR_JWKS_UNAVAILABLE' });
      fetches = outcomes.length;
      expect(fetches).toBe(1);
      provider.answer = 'keys';
      advance(JWKS_RETRY_AFTER_FAILURE_MS);
      await expect(verify(await mint('old'))).resolves.toMatchObject({ sub: 'op' });
    });
  });
});
