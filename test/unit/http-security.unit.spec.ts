// The HTTP API's access control and audit (adapters/http/security.ts) on a bare fastify app: what a refused caller
// is told, what the log and the audit trail get.
jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { request } from 'node:http';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import pino from 'pino';
import { createTokenVerifier } from '../../src/adapters/auth/tokens';
import { installSecurity, isLiteralHost, type SecurityDependencies } from '../../src/adapters/http/security';
import { problemInstance, toProblem, sendProblem } from '../../src/adapters/http/problem';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { AuditVerification } from '../../src/adapters/http/response-schemas';
import { AUDIT_EVENT_TYPE, auditStreamOf, chain, genesisHash, type AuditEntry } from '../../src/application/audit/audit-chain';
import { AuditTrail } from '../../src/application/audit/audit-trail';
import type { RecordedEvent } from '../../src/application/ports/event-store';
import type { PatientErasure } from '../../src/application/patient-erasure';
import type { Principal } from '../../src/application/access/policy';
import { caughtUpConsultations, documentPatientKeyIn } from '../../src/bootstrap/security-module';
import { ConflictError, NotFoundError, UnavailableError } from '../../src/domain/shared/errors';

const secret = randomBytes(32);
const issuer = 'telemed-rts';
const audience = 'telemed-rts';
const CPR = '251248-1234';
/** The one consultation the harness's GET /consultations/:id knows (as the route does: 404 for any other id). */
const CONSULTATION = '11111111-2222-4333-8444-555555555555';

/** An HS256 token with the given claims, signed by hand (so iat and exp can be anything). */
const tokenOf = (claims: Record<string, unknown>): string => {
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iss: issuer, aud: audience, ...claims })}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
};
const nowSeconds = () => Math.floor(Date.now() / 1000);

type Answer = { statusCode: number; headers: Record<string, string>; json(): any };
type Harness = { app: FastifyInstance; base: string; audited: AuditEntry[]; logLines: Record<string, unknown>[] };
// Real sockets (light-my-request's inject loads an ESM-only cookie module that jest cannot require).
const call = async (h: Harness, method: 'GET' | 'POST', url: string, headers: Record<string, string> = {}, payload?: object): Promise<Answer> => {
  const res = await fetch(`${h.base}${url}`, {
    method,
    headers: { ...headers, ...(payload ? { 'content-type': 'application/json' } : {}) },
    ...(payload ? { body: JSON.stringify(payload) } : {}),
  });
  const text = await res.text();
  return { statusCode: res.status, headers: Object.fromEntries(res.headers), json: () => JSON.parse(text) };
};

const harness = async (overrides: Partial<SecurityDependencies> = {}, routes: (app: FastifyInstance) => void = () => {}): Promise<Harness> => {
  const audited: AuditEntry[] = [];
  const logLines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) logLines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const app = Fastify({ loggerInstance: pino({ level: 'debug' }, stream) as unknown as FastifyBaseLogger });
  app.setErrorHandler((error, request, reply) => sendProblem(reply, toProblem(error, problemInstance(request.url))));
  const verify = createTokenVerifier({ secret, issuer, audience });
  installSecurity(app, {
    mode: 'on',
    verifyBearer: async (token) => {
      const claims = await verify(token);
      return { subject: claims.sub, role: claims.role, via: 'jwt', ...(claims.role === 'patient' ? { patientKey: 'p-own' } : {}) } as Principal;
    },
    rateLimit: { perSecond: 100, burst: 100 },
    patientKeyOf: (cpr) => `p-${cpr.slice(0, 2)}`,
    documentPatientKey: async () => null,
    clinicianScope: async () => ({ uniqueIds: new Set(), patientKeys: new Set() }),
    audit: { record: async (entry: AuditEntry) => void audited.push(entry) } as unknown as AuditTrail,
    erasure: {} as PatientErasure,
    now: () => new Date(),
    ...overrides,
  });
  app.get('/patients/:patientId/observations', async () => ({ count: 0 }));
  app.post('/consultations', async () => ({}));
  app.get('/consultations', async () => ({ items: [] }));
  app.get<{ Params: { id: string } }>('/consultations/:id', async (request) => {
    if (request.params.id !== CONSULTATION) throw new NotFoundError('consultation_not_found', 'no consultation has this id');
    return { id: CONSULTATION };
  });
  app.post('/consultations/:id/accept', async () => ({}));
  app.post('/consultations/:id/decline', async () => {
    throw new ConflictError('offer_expired', 'the offer to this expert expired');
  });
  routes(app);
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, base, audited, logLines };
};

describe('installSecurity: refused tokens', () => {
  const get = (h: Harness, token: string) => call(h, 'GET', `/patients/${CPR}/observations`, { authorization: `Bearer ${token}` });

  it('says a token is not valid yet when its nbf lies beyond the clocks\' skew', async () => {
    const h = await harness();
    const res = await get(h, tokenOf({ sub: 'ops', role: 'operator', nbf: nowSeconds() + 600, exp: nowSeconds() + 3600 }));
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ code: 'unauthenticated', detail: expect.stringContaining('not valid yet') });
    expect((await get(h, tokenOf({ sub: 'ops', role: 'operator', iat: nowSeconds() + 30, nbf: nowSeconds() + 30, exp: nowSeconds() + 3600 }))).statusCode).not.toBe(401);
    await h.app.close();
  });

  it('says a token was issued in the future, and logs the reason code but never the token', async () => {
    const h = await harness();
    const token = tokenOf({ sub: 'ops', role: 'operator', iat: nowSeconds() + 600, exp: nowSeconds() + 3600 });
    const res = await get(h, token);
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ code: 'unauthenticated', detail: expect.stringContaining('issued in the future') });
    const line = h.logLines.find((l) => l['credentialsRefused'] !== undefined);
    expect(line).toMatchObject({ credentialsRefused: 'ERR_JWT_ISSUED_IN_FUTURE', reqId: expect.anything() });
    expect(JSON.stringify(h.logLines)).not.toContain(token.split('.')[2]);
    await h.app.close();
  });

  it('says a token has expired', async () => {
    const h = await harness();
    const res = await get(h, tokenOf({ sub: 'ops', role: 'operator', iat: nowSeconds() - 7200, exp: nowSeconds() - 3600 }));
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ code: 'unauthenticated', detail: 'the token has expired' });
    expect(h.logLines.find((l) => l['credentialsRefused'] !== undefined)).toMatchObject({ credentialsRefused: 'ERR_JWT_EXPIRED' });
    await h.app.close();
  });

  it('keeps the generic detail for a wrong signature', async () => {
    const h = await harness();
    const good = tokenOf({ sub: 'ops', role: 'operator', exp: nowSeconds() + 3600 });
    const res = await get(h, `${good.split('.').slice(0, 2).join('.')}.${'A'.repeat(43)}`);
    expect(res.statusCode).toBe(401);
    expect(res.json().detail).toBe('the token or API key is not valid (expired, wrong signature, issuer or audience)');
    expect(h.logLines.find((l) => l['credentialsRefused'] !== undefined)).toMatchObject({ credentialsRefused: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
    await h.app.close();
  });
});

describe('installSecurity: an identity provider whose key set cannot be used', () => {
  it("answers 503 auth_unavailable with Retry-After, not a 401 that makes clients drop a good sign-in, and audits the refusal", async () => {
    const http = await import('node:http');
    const { generateKeyPairSync } = await import('node:crypto');
    const jose = await import('jose');
    // A provider that has never answered since the hub started: no key set to check any token with.
    const provider = http.createServer((_req, res) => void res.writeHead(503).end());
    await new Promise<void>((resolve) => provider.listen(0, '127.0.0.1', resolve));
    const jwksUrl = `http://127.0.0.1:${(provider.address() as { port: number }).port}/jwks`;
    const verify = createTokenVerifier({ jwksUrl, issuer, audience });
    const h = await harness({
      verifyBearer: async (token) => {
        const claims = await verify(token);
        return { subject: claims.sub, role: claims.role, via: 'jwt' } as Principal;
      },
    });
    try {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const token = await new jose.SignJWT({ role: 'operator' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setSubject('ops').setIssuer(issuer).setAudience(audience)
        .setIssuedAt().setExpirationTime('1h').sign(privateKey);
      const res = await call(h, 'GET', `/patients/${CPR}/observations`, { authorization: `Bearer ${token}` });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toMatchObject({ code: 'auth_unavailable', type: '/problems/auth_unavailable' });
      expect(res.headers['retry-after']).toBe('5');
      // RFC 6750's invalid_token would tell the client to get another token.
      expect(res.headers['www-authenticate']).toBeUndefined();
      await h.app.close(); // the audit of a refusal is recorded after the answer: close waits for it
      expect(h.audited).toEqual([expect.objectContaining({ outcome: 'denied', status: 503, reason: 'auth_unavailable' })]);
      expect(JSON.stringify(h.logLines)).not.toContain(token.split('.')[2]);
    } finally {
      await h.app.close();
      provider.closeAllConnections();
      await new Promise((resolve) => provider.close(resolve));
    }
  });
});

describe('installSecurity: a CPR number as the subject', () => {
  it('refuses a valid token whose sub is a CPR number with 401, saying why, and audits no CPR number', async () => {
    const h = await harness();
    const subs = ['251248-1234', '2512481234', '251248 1234', '19481225-1234', '251248\u20131234', '2512481234x'];
    for (const sub of subs) {
      const res = await call(h, 'GET', `/patients/${CPR}/observations`, { authorization: `Bearer ${tokenOf({ sub, role: 'patient', patient: CPR, exp: nowSeconds() + 3600 })}` });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toMatchObject({ code: 'unauthenticated', detail: "the token's sub must not be a CPR number: it is recorded in the audit trail, which erasure cannot reach" });
    }
    expect(h.audited.length).toBe(subs.length);
    expect(JSON.stringify(h.audited)).not.toMatch(/251248.?1234/);
    await h.app.close();
  });

  it('hands out no dev-login token with a CPR number as its sub (422 invalid_subject)', async () => {
    const devLogin = jest.fn(async () => ({ token: 't', expiresIn: 60 }));
    const h = await harness({ devLogin });
    const res = await call(h, 'POST', '/auth/dev-login', {}, { role: 'patient', patient: CPR, sub: '251248-1234' });
    expect(res.statusCode).toBe(422);
    expect(res.json()).toMatchObject({ code: 'invalid_subject', detail: expect.stringContaining('must not be a CPR number') });
    expect(devLogin).not.toHaveBeenCalled();
    expect((await call(h, 'POST', '/auth/dev-login', {}, { role: 'operator', sub: 'ops' })).statusCode).toBe(200);
    await h.app.close();
  });

  it('refuses a valid token whose systemId is a CPR number with 401, saying why, and audits no CPR number', async () => {
    const h = await harness();
    for (const systemId of ['251248-1234', '2512481234', '19481225-1234']) {
      const res = await call(h, 'GET', `/consultations?system=${systemId}`, { authorization: `Bearer ${tokenOf({ sub: 'sys-cpr', role: 'system', systemId, exp: nowSeconds() + 3600 })}` });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toMatchObject({ code: 'unauthenticated', detail: "the token's systemId must not be a CPR number: it is recorded in the audit trail, which erasure cannot reach" });
    }
    expect(JSON.stringify(h.audited)).not.toMatch(/1948|251248.?1234/);
    await h.app.close();
  });

  it('hands out no dev-login token with a CPR-like sub or systemId in any spelling (422 invalid_subject)', async () => {
    const devLogin = jest.fn(async () => ({ token: 't', expiresIn: 60 }));
    const h = await harness({ devLogin });
    for (const sub of ['19481225-1234', '251248\u20131234', '2512481234x', 'user-2512481234', 'v2-251248-1234']) {
      const res = await call(h, 'POST', '/auth/dev-login', {}, { role: 'clinician', systemId: 'chengdu', sub });
      expect({ sub, status: res.statusCode, body: res.json() }).toMatchObject({ sub, status: 422, body: { code: 'invalid_subject', errors: [{ path: 'sub' }] } });
    }
    for (const systemId of ['251248-1234', '2512481234', '19481225-1234']) {
      const res = await call(h, 'POST', '/auth/dev-login', {}, { role: 'clinician', systemId, sub: 'clin-cprsys' });
      expect({ systemId, status: res.statusCode, body: res.json() }).toMatchObject({ systemId, status: 422, body: { code: 'invalid_subject', detail: expect.stringContaining("systemId must not be a CPR number"), errors: [{ path: 'systemId' }] } });
      expect(JSON.stringify(res.json())).not.toContain(systemId);
    }
    expect(devLogin).not.toHaveBeenCalled();
    expect((await call(h, 'POST', '/auth/dev-login', {}, { role: 'clinician', systemId: 'chengdu', sub: 'clin-1' })).statusCode).toBe(200);
    // Ten digits glued to other digits are no CPR number for a refusal (the verifier takes such a token too).
    for (const sub of ['12512481234', 'order-202612021030-17']) {
      expect({ sub, status: (await call(h, 'POST', '/auth/dev-login', {}, { role: 'clinician', systemId: 'chengdu', sub })).statusCode }).toEqual({ sub, status: 200 });
    }
    expect((await call(h, 'POST', '/auth/dev-login', {}, { role: 'clinician', systemId: 'site-202612021030', sub: 'clin-2' })).statusCode).toBe(200);
    await h.app.close();
  });
});

describe('installSecurity: a CPR number as a system id', () => {
  it('refuses a system acting for a CPR-shaped system id and keeps the number out of the audit trail', async () => {
    const h = await harness({ verifyBearer: async () => ({ subject: 'chengdu', role: 'system', systemId: 'chengdu', via: 'jwt' }) });
    try {
      for (const applicantSystemId of [CPR, '2512481234']) {
        const res = await call(h, 'POST', '/consultations', { authorization: 'Bearer x' }, { applicantSystemId, applicantClinician: 'x', candidates: ['leshan:e5'], clinicalQuestion: 'q', summary: '' });
        expect(res.statusCode).toBe(403);
      }
      expect(h.audited).toHaveLength(2);
      expect(h.audited.map((e) => e.resource)).toEqual([null, null]);
      expect(JSON.stringify(h.audited)).not.toMatch(/251248-?1234/);
      // A real system id is still named.
      await call(h, 'POST', '/consultations', { authorization: 'Bearer x' }, { applicantSystemId: 'leshan' });
      expect(h.audited[2]).toMatchObject({ resource: 'leshan', outcome: 'denied' });
    } finally {
      await h.app.close();
    }
  });
});

describe('installSecurity: a missing or misspelt actor field', () => {
  it('is a 400 invalid_request naming the field, not a 403 audited as a denial', async () => {
    const h = await harness({ verifyBearer: async () => ({ subject: 'chengdu', role: 'system', systemId: 'chengdu', via: 'jwt' }) });
    const auth = { authorization: 'Bearer x' };
    const id = '11111111-2222-4333-8444-555555555555';
    try {
      const cases: [Promise<Answer>, string][] = [
        [call(h, 'GET', '/consultations', auth), 'query.system'],
        [call(h, 'POST', '/consultations', auth, { applicantClinician: 'x', candidates: ['leshan:e5'], clinicalQuestion: 'q', summary: '' }), 'body.applicantSystemId'],
        [call(h, 'POST', `/consultations/${id}/accept`, auth, { expert: 'leshan:e2' }), 'body.expertId'],
      ];
      for (const [answer, path] of cases) {
        const res = await answer;
        expect({ status: res.statusCode, code: res.json().code, paths: res.json().errors.map((e: { path: string }) => e.path) }).toEqual({ status: 400, code: 'invalid_request', paths: [path] });
      }
      expect(h.audited).toEqual([]);
      // A well-formed actor of another system is still refused and audited.
      expect((await call(h, 'GET', '/consultations?system=leshan', auth)).statusCode).toBe(403);
      expect(h.audited).toEqual([expect.objectContaining({ outcome: 'denied', reason: 'other_system' })]);
    } finally {
      await h.app.close();
    }
  });

  it('is not asked of a role that never acts for a system: a patient or an operator gets 403 whatever the body', async () => {
    for (const role of ['patient', 'operator'] as const) {
      const h = await harness({ verifyBearer: async () => ({ subject: `a-${role}`, role, via: 'jwt', ...(role === 'patient' ? { patientKey: 'p-own' } : {}) }) as Principal });
      const auth = { authorization: 'Bearer x' };
      try {
        for (const [url, body] of [['/consultations', {}], ['/consultations/11111111-2222-4333-8444-555555555555/accept', { expert: 'x' }]] as const) {
          const res = await call(h, 'POST', url, auth, body);
          expect({ role, url, status: res.statusCode, code: res.json().code }).toEqual({ role, url, status: 403, code: 'forbidden' });
        }
        expect(h.audited.map((e) => e.reason)).toEqual(['role_may_not_act_for_a_system', 'role_may_not_act_for_a_system']);
      } finally {
        await h.app.close();
      }
    }
  });
});

describe('installSecurity: a refused step in the audit trail', () => {
  it('records the problem code as the reason of an allowed request that failed', async () => {
    const h = await harness({ verifyBearer: async () => ({ subject: 'chengdu', role: 'system', systemId: 'chengdu', via: 'jwt' }) });
    try {
      const res = await call(h, 'POST', '/consultations/11111111-2222-4333-8444-555555555555/decline', { authorization: 'Bearer x' }, { expertId: 'chengdu:li' });
      expect(res.statusCode).toBe(409);
      expect(h.audited).toEqual([expect.objectContaining({ outcome: 'error', status: 409, reason: 'offer_expired' })]);
    } finally {
      await h.app.close();
    }
  });
});

describe('installSecurity: reads of patient data while the audit trail cannot be written', () => {
  /** An audit trail stub whose `unwritable` flag the test sets, recording what it is given. */
  const trailOf = (state: { unwritable: boolean }, audited: AuditEntry[]) =>
    ({
      get unwritable() {
        return state.unwritable;
      },
      record: async (entry: AuditEntry) => {
        audited.push(entry);
        if (state.unwritable) throw new Error('disk full');
      },
    }) as unknown as AuditTrail;

  it('refuses them with 503 audit_unavailable and Retry-After (the refusal audited), and serves them again once the trail is writable', async () => {
    const state = { unwritable: false };
    const audited: AuditEntry[] = [];
    let refusedReads = 0;
    // The patient's own CPR number maps to their key (p-own); any other to another patient's.
    const h = await harness({ audit: trailOf(state, audited), onAuditUnavailable: () => refusedReads++, patientKeyOf: (cpr) => (cpr === CPR ? 'p-own' : 'p-other') });
    const system = await harness({ audit: trailOf(state, []), verifyBearer: async () => ({ subject: 'chengdu', role: 'system', systemId: 'chengdu', via: 'jwt' }) });
    try {
      const patient = { authorization: `Bearer ${tokenOf({ sub: 'pat', role: 'patient', exp: nowSeconds() + 600 })}` };
      expect((await call(h, 'GET', `/patients/${CPR}/observations`, patient)).statusCode).toBe(200);
      state.unwritable = true;
      const res = await call(h, 'GET', `/patients/${CPR}/observations`, patient);
      expect(res.statusCode).toBe(503);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(res.headers['retry-after']).toBe('5');
      expect(res.json()).toMatchObject({ code: 'audit_unavailable', type: '/problems/audit_unavailable', status: 503 });
      expect(refusedReads).toBe(1);
      // The refusal is recorded: its append is what finds the trail writable again.
      expect(audited[audited.length - 1]).toMatchObject({ action: 'observations.read', patientKey: 'p-own', outcome: 'error', status: 503, reason: 'audit_unavailable' });
      // Refused by the policy: still 403 (nothing would have been served).
      expect((await call(h, 'GET', '/patients/010203-2345/observations', patient)).statusCode).toBe(403);
      // A consultation read concerns patients too.
      expect((await call(system, 'GET', '/consultations?system=chengdu', { authorization: 'Bearer x' })).json()).toMatchObject({ code: 'audit_unavailable' });
      state.unwritable = false;
      expect((await call(h, 'GET', `/patients/${CPR}/observations`, patient)).statusCode).toBe(200);
      expect((await call(system, 'GET', '/consultations?system=chengdu', { authorization: 'Bearer x' })).statusCode).toBe(200);
      expect(refusedReads).toBe(1);
    } finally {
      await h.app.close();
      await system.app.close();
    }
  });
});

describe('installSecurity: POST /auth/dev-login', () => {
  it("names a patient by their pseudonymous key in the token's claims, never by the CPR number", async () => {
    const devLogin = jest.fn(async (_claims: object) => ({ token: 't', expiresIn: 60 }));
    const h = await harness({ devLogin, patientKeyOf: () => `p${'ab'.repeat(16)}` });
    expect((await call(h, 'POST', '/auth/dev-login', {}, { role: 'patient', patient: CPR })).statusCode).toBe(200);
    expect(devLogin).toHaveBeenCalledWith({ sub: 'patient-abababababab', role: 'patient', patientKey: `p${'ab'.repeat(16)}` });
    expect(JSON.stringify(devLogin.mock.calls)).not.toMatch(/251248|1234/);
    // A CPR number for a role that has no patient would ride along in nobody's interest: refused.
    const operator = await call(h, 'POST', '/auth/dev-login', {}, { role: 'operator', patient: CPR });
    expect(operator.statusCode).toBe(400);
    expect(operator.json()).toMatchObject({ code: 'invalid_request' });
    expect(JSON.stringify(operator.json())).not.toContain(CPR);
    expect(devLogin).toHaveBeenCalledTimes(1);
    await h.app.close();
  });
});

describe('installSecurity: dev-login and DNS rebinding', () => {
  /** A POST with the Host header given (fetch would not send one of its own choosing). */
  const withHost = (h: Harness, host: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const url = new URL(`${h.base}/auth/dev-login`);
      const payload = JSON.stringify({ role: 'operator' });
      const req = request(
        { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': 'application/json', host } },
        (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString('utf8')));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.end(payload);
    });

  it('hands out tokens only to requests addressed to localhost or an IP address, never to a DNS name pointed here', async () => {
    const devLogin = jest.fn(async (_claims: object) => ({ token: 't', expiresIn: 60 }));
    const h = await harness({ devLogin });
    for (const host of ['rebind.attacker.example:8080', 'rebind.attacker.example', '127.0.0.1.nip.io:8080', 'localhost.attacker.example']) {
      const res = await withHost(h, host);
      expect({ host, status: res.status, code: (JSON.parse(res.body) as { code?: string }).code }).toEqual({ host, status: 403, code: 'forbidden' });
    }
    expect(devLogin).not.toHaveBeenCalled();
    for (const host of ['localhost:8080', 'localhost', '127.0.0.1:8080', '[::1]:8080', '[::1]', '10.0.0.5:8080', 'app.localhost:8080']) {
      expect({ host, status: (await withHost(h, host)).status }).toEqual({ host, status: 200 });
    }
    expect(isLiteralHost(undefined)).toBe(true); // HTTP/1.0 without Host (Node refuses HTTP/1.1 without it): no browser's
    expect(isLiteralHost('[::1]x')).toBe(false);
    expect(isLiteralHost('[evil.example]:80')).toBe(false);
    await h.app.close();
  });

  it('hands out no token to a request that came through a proxy: a reverse proxy on this machine sends its own Host', async () => {
    // nginx's proxy_pass http://127.0.0.1:8080 sends Host: 127.0.0.1:8080 by default: a hub left on loopback behind a
    // TLS proxy on the same machine answered dev-login to anyone the proxy serves, an operator's token included.
    const devLogin = jest.fn(async (_claims: object) => ({ token: 't', expiresIn: 60 }));
    const h = await harness({ devLogin });
    const post = (headers: Record<string, string>) => call(h, 'POST', '/auth/dev-login', headers, { role: 'operator' });
    for (const header of ['x-forwarded-for', 'forwarded', 'x-real-ip', 'x-forwarded-host', 'x-forwarded-proto', 'via']) {
      const res = await post({ [header]: header === 'forwarded' ? 'for=203.0.113.5' : header === 'via' ? '1.1 proxy' : '203.0.113.5' });
      expect({ header, status: res.statusCode, code: res.json().code }).toEqual({ header, status: 403, code: 'forbidden' });
    }
    expect(devLogin).not.toHaveBeenCalled();
    expect((await post({})).statusCode).toBe(200);
    await h.app.close();
  });
  it('hands out no token through a proxy that sends only another X-Forwarded-* or a client-address header of its own', async () => {
    // Apache's mod_proxy sends X-Forwarded-Server, proxies and ingresses X-Forwarded-Port or -Prefix, CDNs and load
    // balancers CF-Connecting-IP, True-Client-IP, X-Client-IP ...: README says any X-Forwarded-* is refused.
    const devLogin = jest.fn(async (_claims: object) => ({ token: 't', expiresIn: 60 }));
    const h = await harness({ devLogin });
    const post = (headers: Record<string, string>) => call(h, 'POST', '/auth/dev-login', headers, { role: 'operator' });
    const headers = ['x-forwarded-server', 'x-forwarded-port', 'x-forwarded-prefix', 'x-forwarded-ssl', 'X-Original-Forwarded-For', 'cf-connecting-ip', 'true-client-ip', 'x-client-ip', 'x-cluster-client-ip', 'fastly-client-ip', 'x-envoy-external-address'];
    for (const header of headers) {
      const res = await post({ [header]: header === 'x-forwarded-port' ? '443' : '203.0.113.5' });
      expect({ header, status: res.statusCode, code: res.json().code }).toEqual({ header, status: 403, code: 'forbidden' });
    }
    expect((await post({ 'x-forwarded-for': '' })).statusCode).toBe(403); // an empty value still says a proxy was there
    expect(devLogin).not.toHaveBeenCalled();
    // What a browser or the CLI on this machine sends is still answered.
    expect((await post({ 'user-agent': 'Mozilla/5.0', origin: 'http://127.0.0.1:8080', 'x-requested-with': 'x', 'x-request-id': 'r1' })).statusCode).toBe(200);
    await h.app.close();
  });
});

describe('installSecurity: RTS_AUTH=off and DNS rebinding', () => {
  /** A request with the Host header given, as a browser sends it to a page on a DNS name that now points here. */
  const withHost = (h: Harness, method: string, path: string, host: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const url = new URL(`${h.base}${path}`);
      const req = request({ host: url.hostname, port: url.port, path: url.pathname, method, headers: { host } }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString('utf8')));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });

  // Without access control every caller is let in: a web page on a name its owner points at 127.0.0.1 is then
  // same-origin with the hub and reads, changes and erases every patient's data, as dev-login's check keeps it from
  // minting a token. Such a request names the page's host; the hub's own page and tools name localhost or an address.
  it('answers only requests addressed to localhost or an IP address', async () => {
    const h = await harness({ mode: 'off' });
    for (const host of ['rebind.attacker.example:8080', 'rebind.attacker.example', '127.0.0.1.nip.io']) {
      const res = await withHost(h, 'GET', `/patients/${CPR}/observations`, host);
      expect({ host, status: res.status, code: (JSON.parse(res.body) as { code?: string }).code }).toEqual({ host, status: 403, code: 'forbidden' });
      expect(res.body).not.toContain(CPR);
    }
    expect(h.audited.at(-1)).toMatchObject({ outcome: 'denied', status: 403, reason: 'host_not_literal' });
    for (const host of ['localhost:8080', '127.0.0.1:8080', '[::1]:8080']) {
      expect({ host, status: (await withHost(h, 'GET', `/patients/${CPR}/observations`, host)).status }).toEqual({ host, status: 200 });
    }
    await h.app.close();
  });
});

describe('installSecurity: rate-limit refusals in the audit trail', () => {
  const rateLimited = (h: Harness) => h.audited.filter((e) => e.status === 429);
  let clock = Date.now();
  const limited = (overrides: Partial<SecurityDependencies> = {}) =>
    harness({
      rateLimit: { perSecond: 0.1, burst: 1 },
      now: () => new Date(clock),
      // The patient the token names is the one in the path: the first request is allowed.
      verifyBearer: async (token) => ({ subject: token, role: 'patient', via: 'jwt', patientKey: 'p-25' }),
      ...overrides,
    });
  const read = (h: Harness, who: string) => call(h, 'GET', `/patients/${CPR}/observations`, { authorization: `Bearer ${who}` });

  it('audits a 429 as a denied request of the caller, about the patient in the path', async () => {
    const h = await limited();
    expect([(await read(h, 'anna')).statusCode, (await read(h, 'anna')).statusCode]).toEqual([200, 429]);
    expect(rateLimited(h)).toEqual([
      expect.objectContaining({ subject: 'anna', role: 'patient', outcome: 'denied', reason: 'rate_limited', patientKey: 'p-25', action: 'GET /patients/:patientId/observations' }),
    ]);
    await h.app.close();
  });

  it('records a flood of 429s as one event at once and one with the count per caller and second', async () => {
    const h = await limited();
    await read(h, 'anna');
    const statuses = [];
    for (let i = 0; i < 30; i++) statuses.push((await read(h, 'anna')).statusCode);
    expect(statuses.every((s) => s === 429)).toBe(true);
    expect((await read(h, 'bo')).statusCode).toBe(200);
    expect((await read(h, 'bo')).statusCode).toBe(429);
    // While the second lasts: the first refusal of each caller only.
    expect(rateLimited(h).map((e) => [e.subject, e.reason])).toEqual([
      ['anna', 'rate_limited'],
      ['bo', 'rate_limited'],
    ]);
    clock += 1500; // the second is over: the next refusal records the count of the last one, then its own
    expect((await read(h, 'anna')).statusCode).toBe(429);
    expect(rateLimited(h).map((e) => [e.subject, e.reason])).toEqual([
      ['anna', 'rate_limited'],
      ['bo', 'rate_limited'],
      ['anna', 'rate_limited:29'],
      ['anna', 'rate_limited'],
    ]);
    await read(h, 'anna');
    await h.app.close(); // closing records the counts still open
    expect(rateLimited(h).map((e) => [e.subject, e.reason]).slice(4)).toEqual([['anna', 'rate_limited:1']]);
  });

  it('records the counts of a window when it ends, without waiting for another refusal', async () => {
    clock = Date.now();
    const h = await limited({ now: () => new Date() });
    for (let i = 0; i < 4; i++) await read(h, 'anna');
    expect(rateLimited(h).map((e) => e.reason)).toEqual(['rate_limited']);
    await new Promise((r) => setTimeout(r, 2100));
    expect(rateLimited(h).map((e) => e.reason)).toEqual(['rate_limited', 'rate_limited:2']);
    await h.app.close();
  });
});

describe("installSecurity: whose request a patient's audit entry was", () => {
  // An identity provider's patient: its own sub (not the hub's pseudonym), the key made from its CPR claim ('p-25'
  // for CPR here, as patientKeyOf makes it).
  const principals: Record<string, Principal> = {
    own: { subject: 'idp|a-4711', role: 'patient', patientKey: 'p-25', via: 'jwt' },
    other: { subject: 'idp|b-0815', role: 'patient', patientKey: 'p-99', via: 'jwt' },
    unlinked: { subject: 'idp|c-0000', role: 'patient', via: 'jwt' },
    ops: { subject: 'ops', role: 'operator', via: 'jwt' },
  };

  it("records selfAccess from the token's patient key: true for the patient's own failed request, false for another's, none for staff", async () => {
    const h = await harness({ verifyBearer: async (token) => principals[token]! }, (app) =>
      app.post('/observations/search', async () => {
        throw new UnavailableError('storage_unavailable', 'the store did not answer in time');
      }),
    );
    try {
      const upload = (who: string) => call(h, 'POST', '/observations/search', { authorization: `Bearer ${who}` }, { patientId: CPR });
      expect((await upload('own')).statusCode).toBe(503);
      expect((await upload('other')).statusCode).toBe(403);
      expect((await upload('unlinked')).statusCode).toBe(403);
      expect((await upload('ops')).statusCode).toBe(403);
      await h.app.close();
      const entries = h.audited.filter((e) => e.patientKey === 'p-25').map((e) => [e.subject, e.outcome, e.selfAccess]);
      expect(entries).toEqual([
        ['idp|a-4711', 'error', true],
        ['idp|b-0815', 'denied', false],
        ['idp|c-0000', 'denied', false],
        ['ops', 'denied', undefined],
      ]);
    } finally {
      await h.app.close();
    }
  });
});

describe('installSecurity: reading a consultation by id', () => {
  // Requested by xian, declined by chengdu's expert, now with beijing's.
  const systems = { readers: ['xian', 'beijing'], parties: ['xian', 'chengdu', 'beijing'], patientKeys: [] };
  const principals: Record<string, Principal> = {
    leshan: { subject: 'system:leshan', role: 'system', systemId: 'leshan', via: 'jwt' },
    'dr-leshan': { subject: 'dr-leshan', role: 'clinician', systemId: 'leshan', via: 'jwt' },
    patient: { subject: 'patient-1', role: 'patient', patientKey: 'p-own', via: 'jwt' },
    operator: { subject: 'ops', role: 'operator', via: 'jwt' },
    chengdu: { subject: 'system:chengdu', role: 'system', systemId: 'chengdu', via: 'jwt' },
    beijing: { subject: 'system:beijing', role: 'system', systemId: 'beijing', via: 'jwt' },
  };
  const withConsultation = () =>
    harness({
      verifyBearer: async (token) => principals[token]!,
      consultationSystems: async (id) => (id === CONSULTATION ? systems : null),
    });
  const read = async (h: Harness, who: string, id: string) => {
    const res = await call(h, 'GET', `/consultations/${id}`, { authorization: `Bearer ${who}` });
    const { instance: _instance, ...body } = res.json();
    return { status: res.statusCode, body };
  };

  it('answers a caller with no part in it as for an id that does not exist (404), whatever its role', async () => {
    const h = await withConsultation();
    try {
      for (const who of ['leshan', 'dr-leshan', 'patient', 'operator']) {
        const hidden = await read(h, who, CONSULTATION);
        expect({ who, hidden }).toEqual({ who, hidden: await read(h, who, 'aaaaaaaa-0000-4000-8000-000000000000') });
        expect(hidden).toMatchObject({ status: 404, body: { code: 'consultation_not_found' } });
      }
      // Audited as the refusal it is.
      expect(h.audited.filter((e) => e.resource === CONSULTATION).map((e) => [e.outcome, e.status])).toEqual(Array.from({ length: 4 }, () => ['denied', 404]));
    } finally {
      await h.app.close();
    }
  });

  it('tells a system whose expert declined that it may no longer read it (403), and lets the current ones read', async () => {
    const h = await withConsultation();
    try {
      expect(await read(h, 'chengdu', CONSULTATION)).toMatchObject({ status: 403, body: { code: 'forbidden' } });
      expect(await read(h, 'beijing', CONSULTATION)).toEqual({ status: 200, body: { id: CONSULTATION } });
    } finally {
      await h.app.close();
    }
  });
});

describe("a consultation's access check while the store cannot be read", () => {
  // The check reads who may read the case and which patients it is about (the audit goes under their keys): a store
  // that fails that read answered 503 with no audit entry at all, a request about a patient's case the trail never saw.
  const system: Principal = { subject: 'system:beijing', role: 'system', systemId: 'beijing', via: 'jwt' };
  const failingStore = () =>
    harness({
      verifyBearer: async () => system,
      consultationSystems: async () => {
        throw new UnavailableError('storage_unavailable', 'the store did not answer in time');
      },
    });

  it('answers 503, serves nothing, and records the refused read and step, naming the consultation', async () => {
    const h = await failingStore();
    try {
      const read = await call(h, 'GET', `/consultations/${CONSULTATION}`, { authorization: 'Bearer beijing' });
      expect(read.statusCode).toBe(503);
      expect(read.json()).toMatchObject({ code: 'storage_unavailable' });
      const step = await call(h, 'POST', `/consultations/${CONSULTATION}/accept`, { authorization: 'Bearer beijing' }, { expertId: 'beijing:wang' });
      expect(step.statusCode).toBe(503);
      expect(step.json()).toMatchObject({ code: 'storage_unavailable' });
      expect(h.audited.map((e) => [e.action, e.resource, e.systemId, e.outcome, e.status, e.reason])).toEqual([
        [`GET /consultations/:id`, CONSULTATION, 'beijing', 'error', 503, 'storage_unavailable'],
        [`POST /consultations/:id/accept`, CONSULTATION, 'beijing', 'error', 503, 'storage_unavailable'],
      ]);
    } finally {
      await h.app.close();
    }
  });
});

describe("a document's access check while the registry cannot be read", () => {
  // The registry fails the access check's read (a PostgreSQL statement timeout, a projection catch-up that failed
  // once) and answers the route's own read a moment later: the document belongs to another patient.
  const flakyRegistry = () => {
    let reads = 0;
    return {
      entry: async (uniqueId: string) => {
        reads++;
        if (reads === 1) throw new UnavailableError('storage_unavailable', 'the store did not answer in time');
        if (uniqueId !== '2.25.123') throw new NotFoundError('document_not_found', 'no document has this uniqueId');
        return { uniqueId, patientKey: 'p-other' };
      },
    };
  };
  const withDocuments = (xds: ReturnType<typeof flakyRegistry>) => (app: FastifyInstance) => {
    app.get<{ Params: { uniqueId: string } }>('/documents/:uniqueId', async (request) => ({ servedDocumentOf: (await xds.entry(request.params.uniqueId)).patientKey }));
  };
  const patientToken = () => tokenOf({ sub: 'p-own-sub', role: 'patient', iat: nowSeconds(), exp: nowSeconds() + 600 });

  it("answers 503 and serves nothing: a failed read is not taken for \"no such document\" (which skipped the check)", async () => {
    const xds = flakyRegistry();
    const h = await harness({ documentPatientKey: documentPatientKeyIn(xds as never) }, withDocuments(xds));
    const res = await call(h, 'GET', '/documents/2.25.123', { authorization: `Bearer ${patientToken()}` });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ code: 'storage_unavailable' });
    expect(res.json()).not.toHaveProperty('servedDocumentOf');
    // Once the registry answers, the same request is refused as for a document that does not exist: it is another
    // patient's.
    const again = await call(h, 'GET', '/documents/2.25.123', { authorization: `Bearer ${patientToken()}` });
    expect(again.statusCode).toBe(404);
    expect(again.json()).not.toHaveProperty('servedDocumentOf');
    await h.app.close();
  });

  it('still answers 404 to everyone for a document that does not exist', async () => {
    const xds = flakyRegistry();
    await xds.entry('first read fails').catch(() => undefined);
    const h = await harness({ documentPatientKey: documentPatientKeyIn(xds as never) }, withDocuments(xds));
    const res = await call(h, 'GET', '/documents/2.25.999', { authorization: `Bearer ${patientToken()}` });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ code: 'document_not_found' });
    await h.app.close();
  });
});

describe('a document or consultation the access check does not find', () => {
  // The check and the route each read: what was stored between the two reads was served by the route unchecked (a
  // consultation the background projector had not yet written was absent for the check and present for the route:
  // 59 of 59 polls by another patient got its texts, in a review). Now the check's answer is the answer.
  const patientToken = () => tokenOf({ sub: 'p-own-sub', role: 'patient', iat: nowSeconds(), exp: nowSeconds() + 600 });
  const served: string[] = [];
  const routes = (app: FastifyInstance) => {
    app.get<{ Params: { uniqueId: string } }>('/documents/:uniqueId', async (request) => {
      served.push(request.params.uniqueId);
      return { servedDocumentOf: 'p-other' };
    });
  };

  it('answers 404 document_not_found itself, to everyone, and the route is never run', async () => {
    const h = await harness({ documentPatientKey: async () => null }, routes);
    const res = await call(h, 'GET', '/documents/2.25.123', { authorization: `Bearer ${patientToken()}` });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ code: 'document_not_found', detail: 'no document has this uniqueId' });
    expect(served).toEqual([]);
    expect(h.audited).toEqual([expect.objectContaining({ action: 'GET /documents/:uniqueId', resource: '2.25.123', outcome: 'error', status: 404, reason: 'document_not_found' })]);
    await h.app.close();
  });

  it('leaves an id no document can have to the route, whose answer is 400 (it reads nothing)', async () => {
    const h = await harness({ documentPatientKey: async () => null }, (app) => {
      app.get('/documents/:uniqueId', async (_request, reply) => reply.code(400).send({ code: 'invalid_request' }));
    });
    expect((await call(h, 'GET', '/documents/not-an-oid', { authorization: `Bearer ${patientToken()}` })).statusCode).toBe(400);
    await h.app.close();
  });

  it('answers 404 consultation_not_found itself, and the route (which would find it) is never run', async () => {
    const h = await harness({ consultationSystems: async () => null });
    const res = await call(h, 'GET', `/consultations/${CONSULTATION}`, { authorization: `Bearer ${patientToken()}` });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ code: 'consultation_not_found' });
    expect(res.json()).not.toHaveProperty('id');
    await h.app.close();
  });
});

describe('caughtUpConsultations (what the access checks read)', () => {
  it('reads get and list on the model caught up first (Projector.read), as the routes read it', async () => {
    let caughtUp = false;
    const projector = { read: async <T>(query: () => Promise<T>) => ((caughtUp = true), query()) };
    const readModel = { get: async (id: string) => (caughtUp ? { consultationId: id } : null), list: async () => ({ items: caughtUp ? [1] : [], hasMore: false }) };
    const reading = caughtUpConsultations({ projector, readModel } as never);
    expect(await reading.get('c-1')).toEqual({ consultationId: 'c-1' });
    caughtUp = false;
    expect(await reading.list({ systemId: 's', role: 'expert', limit: 1 } as never)).toEqual({ items: [1], hasMore: false });
  });
});

describe('installSecurity: GET /audit/verify after this process found a chain rewritten behind it', () => {
  it('reports the chain (what the process wrote against what the store holds) and does not hand the forged head out as one to keep', async () => {
    const store = new InMemoryEventStore();
    const trail = new AuditTrail({ store, logger: { error: () => undefined, warn: () => undefined } });
    const h = await harness({ audit: trail });
    try {
      const at = new Date().toISOString();
      const entryOf = (i: number): AuditEntry => ({ at, subject: `s-${i}`, role: 'clinician', systemId: null, action: 'observations.read', patientKey: 'p-25', resource: null, ip: '127.0.0.1', requestId: `r-${i}`, outcome: 'allowed', status: 200, reason: null });
      for (let i = 0; i < 5; i++) await trail.record(entryOf(i));
      const stream = auditStreamOf(entryOf(0));
      const written = (await trail.headsOf(at.slice(0, 10)))[stream]!;
      const operator = { authorization: `Bearer ${tokenOf({ sub: 'ops', role: 'operator', exp: nowSeconds() + 600 })}` };
      expect((await call(h, 'GET', '/audit/verify', operator)).json()).toMatchObject({ ok: true, breaks: [], changedBehindHub: [] });

      // Someone with write access to the store changes who made the third request, relinks the rest and adds one.
      const events = (store as unknown as { streams: Map<string, RecordedEvent[]> }).streams.get(stream)!;
      const forged = chain(genesisHash(stream), events.map((e, i) => ({ ...(e.data as unknown as AuditEntry), ...(i === 2 ? { subject: 'someone-else' } : {}) })));
      events.forEach((e, i) => (events[i] = { ...e, data: forged[i]! }));
      const [added] = chain(forged[4]!.hash, [entryOf(99)]);
      await store.appendToStream(stream, [{ id: randomUUID(), type: AUDIT_EVENT_TYPE, data: added! }], { expectedVersion: 4n });
      // The hub's next anchor finds it (logged as possible tampering).
      expect((await trail.anchorHeads(new Date()))[stream]).toBe(written);

      // Before: ok, and `heads` held the forged head, which an operator keeping it as an anchor then vouched for.
      const res = await call(h, 'GET', '/audit/verify', operator);
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body).toMatchObject({ ok: false, breaks: expect.arrayContaining([{ streamName: stream, index: 4, reason: 'changed_behind_hub' }]) });
      expect(body.changedBehindHub).toEqual([{ streamName: stream, version: 4, wrote: written, stored: forged[4]!.hash, head: added!.hash }]);
      expect(body.heads[stream]).toBe(written);
      expect(Object.values(body.heads)).not.toContain(added!.hash);
      // The answer's shape is the OpenAPI document's (AuditVerification), no more and no less.
      expect(Object.keys(body).sort()).toEqual(Object.keys(AuditVerification.shape).sort());
      expect(AuditVerification.strict().safeParse(body).success).toBe(true);
      expect(JSON.stringify(body)).not.toContain('p-25');
      // Its heads kept as anchors: POST /audit/verify reports the chain too.
      const posted = (await call(h, 'POST', '/audit/verify', { ...operator }, { anchors: body.heads })).json();
      expect(posted.breaks).toEqual(expect.arrayContaining([{ streamName: stream, index: expect.any(Number), reason: 'anchor_missing' }]));
    } finally {
      await h.app.close();
      await trail.close();
    }
  });
});
