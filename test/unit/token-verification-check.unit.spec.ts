// One way of verifying tokens per shared store: the first process records it, one that verifies otherwise is
// refused, a deliberate change of the whole deployment is taken once. What is recorded holds no secret.
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import {
  checkTokenVerification,
  jwksLocation,
  recordedTokenVerification,
  TOKEN_VERIFICATION_STREAM,
  TokenVerificationMismatchError,
  type TokenVerification,
} from '../../src/application/security/token-verification-check';
import { authSecretFingerprint, tokenVerificationOf } from '../../src/bootstrap/security-module';
import { loadConfig } from '../../src/bootstrap/config';
import { uuidV5 } from '../../src/application/ids';

const AT = '2026-12-01T08:00:00.000Z';
const SECRET_A = 'aa'.repeat(32);
const SECRET_B = 'ab'.repeat(32);
const hs256 = (hex: string, claims: Partial<{ issuer: string; audience: string }> = {}): TokenVerification => ({
  mode: 'hs256',
  secretFingerprint: authSecretFingerprint(Buffer.from(hex, 'hex')),
  issuer: 'telemed-rts',
  audience: 'telemed-rts',
  ...claims,
});

describe('the token verification check', () => {
  it('fingerprints tell secrets apart, are stable and are not the secret', () => {
    const a = authSecretFingerprint(Buffer.from(SECRET_A, 'hex'));
    expect(a).toBe(authSecretFingerprint(Buffer.from(SECRET_A, 'hex')));
    expect(a).not.toBe(authSecretFingerprint(Buffer.from(SECRET_B, 'hex')));
    expect(a).toMatch(/^[0-9a-f]{32}$/);
    expect(SECRET_A).not.toContain(a);
  });

  it("reads a process's way from its settings, without credentials of a JWKS URL", () => {
    const base = { RTS_DATA_DIR: '/nonexistent-never-written' };
    expect(tokenVerificationOf(loadConfig({ ...base, RTS_AUTH: 'off' }))).toEqual({ mode: 'off' });
    expect(tokenVerificationOf(loadConfig({ ...base, RTS_AUTH_JWT_SECRET: SECRET_A, RTS_AUTH_ISSUER: 'region' }))).toEqual(hs256(SECRET_A, { issuer: 'region' }));
    expect(tokenVerificationOf(loadConfig({ ...base, RTS_AUTH_JWKS_URL: 'https://user:pw@idp.example/jwks.json' }))).toEqual({
      mode: 'jwks',
      jwksUrl: 'https://idp.example/jwks.json',
      issuer: 'telemed-rts',
      audience: 'telemed-rts',
    });
  });

  it('records the first, accepts it again, refuses every other way, and records nothing of a secret', async () => {
    const store = new InMemoryEventStore();
    expect(await recordedTokenVerification(store)).toBeNull();
    expect(await checkTokenVerification(store, hs256(SECRET_A), AT)).toBe('recorded');
    expect(await checkTokenVerification(store, hs256(SECRET_A), AT)).toBe('matches');
    const others: TokenVerification[] = [
      hs256(SECRET_B),
      hs256(SECRET_A, { issuer: 'other' }),
      hs256(SECRET_A, { audience: 'other' }),
      { mode: 'off' },
      { mode: 'jwks', jwksUrl: 'https://idp.example/jwks.json', issuer: 'telemed-rts', audience: 'telemed-rts' },
    ];
    for (const other of others) {
      const refused = checkTokenVerification(store, other, AT);
      await expect(refused).rejects.toBeInstanceOf(TokenVerificationMismatchError);
      await expect(refused).rejects.toThrow(/^the store's hub processes verify tokens with an HS256 secret with fingerprint [0-9a-f]{12} /);
    }
    const { events } = await store.readStream(TOKEN_VERIFICATION_STREAM);
    expect(events).toHaveLength(1);
    expect(JSON.stringify(events[0]!.data)).not.toContain(SECRET_A);
    expect(events[0]!.data).toEqual({ ...hs256(SECRET_A), recordedAt: AT });
  });

  it('takes a deliberate change once; the processes after it find the new way', async () => {
    const store = new InMemoryEventStore();
    await checkTokenVerification(store, hs256(SECRET_A), AT);
    expect(await checkTokenVerification(store, hs256(SECRET_B), AT, { acceptChange: true })).toBe('changed');
    expect(await checkTokenVerification(store, hs256(SECRET_B), AT)).toBe('matches');
    await expect(checkTokenVerification(store, hs256(SECRET_A), AT)).rejects.toBeInstanceOf(TokenVerificationMismatchError);
    expect(await recordedTokenVerification(store)).toEqual(hs256(SECRET_B));
  });

  it('two processes starting at once: with the same way both go on, with different ones exactly one does', async () => {
    const same = new InMemoryEventStore();
    const both = await Promise.all([checkTokenVerification(same, hs256(SECRET_A), AT), checkTokenVerification(same, hs256(SECRET_A), AT)]);
    expect(both.sort()).toEqual(['matches', 'recorded']);

    const different = new InMemoryEventStore();
    const outcomes = await Promise.allSettled([checkTokenVerification(different, hs256(SECRET_A), AT), checkTokenVerification(different, { mode: 'off' }, AT)]);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    expect(refused.map((r) => r.reason)).toEqual([expect.any(TokenVerificationMismatchError)]);
    expect((await different.readStream(TOKEN_VERIFICATION_STREAM)).events).toHaveLength(1);
  });

  it("keeps a JWKS URL's query string (it may carry an access key) out of the store and its messages, yet tells queries apart", async () => {
    const base = { RTS_DATA_DIR: '/nonexistent-never-written' };
    const withKey = (key: string) => tokenVerificationOf(loadConfig({ ...base, RTS_AUTH_JWKS_URL: `https://idp.example/jwks.json?api_key=${key}#keys` }));
    const mine = withKey('s3cr3t-access-key');
    expect(mine).toEqual({ mode: 'jwks', jwksUrl: 'https://idp.example/jwks.json', jwksQuerySha256: expect.stringMatching(/^[0-9a-f]{32}$/), issuer: 'telemed-rts', audience: 'telemed-rts' });

    const store = new InMemoryEventStore();
    expect(await checkTokenVerification(store, mine, AT)).toBe('recorded');
    expect(await checkTokenVerification(store, withKey('s3cr3t-access-key'), AT)).toBe('matches');
    expect(JSON.stringify((await store.readStream(TOKEN_VERIFICATION_STREAM)).events.map((e) => [e.data, e.metadata]))).not.toContain('s3cr3t');

    // Another query is another setting; the message names the URL and the query's fingerprint, not the query.
    const refused = checkTokenVerification(store, withKey('another-key'), AT);
    await expect(refused).rejects.toBeInstanceOf(TokenVerificationMismatchError);
    const message = await refused.catch((e: Error) => e.message);
    expect(message).toMatch(/keys at https:\/\/idp\.example\/jwks\.json with a query string of fingerprint [0-9a-f]{12} /);
    expect(message).not.toMatch(/s3cr3t|another-key/);
    // Without any query it is another setting too.
    await expect(checkTokenVerification(store, jwksOf('https://idp.example/jwks.json'), AT)).rejects.toBeInstanceOf(TokenVerificationMismatchError);
  });

  it('reads the whole URL an earlier build recorded as the same setting, so an upgraded hub still starts', async () => {
    const store = new InMemoryEventStore();
    const legacy = { mode: 'jwks', jwksUrl: 'https://idp.example/jwks.json?tenant=north', issuer: 'telemed-rts', audience: 'telemed-rts' };
    await store.appendToStream(TOKEN_VERIFICATION_STREAM, [{ id: uuidV5('legacy-record'), type: 'TokenVerificationInUse', data: { ...legacy, recordedAt: AT } }], { expectedVersion: 'no_stream' });
    expect(await recordedTokenVerification(store)).toEqual(jwksOf('https://idp.example/jwks.json?tenant=north'));
    expect(await checkTokenVerification(store, jwksOf('https://idp.example/jwks.json?tenant=north'), AT)).toBe('matches');
    await expect(checkTokenVerification(store, jwksOf('https://idp.example/jwks.json?tenant=south'), AT)).rejects.toBeInstanceOf(TokenVerificationMismatchError);
  });
});

const jwksOf = (url: string): TokenVerification => ({ mode: 'jwks', ...jwksLocation(url), issuer: 'telemed-rts', audience: 'telemed-rts' });
