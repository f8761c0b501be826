// Hub processes on one PostgreSQL store verify callers' tokens alike: behind one address, a process with another
// HS256 secret refuses the tokens the others accept, and one with RTS_AUTH=off lets anyone in. startHub refuses
// such a process (a ConfigError: main.ts exits 78) against the real server, unless the whole deployment changes
// on purpose; the embedded profile (one process per SQLite store) does not check.
jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { Client } from 'pg';
import { signToken } from '../../src/adapters/auth/tokens';
import { loadHubKeys } from '../../src/adapters/crypto/hub-keys';
import { ConfigError, loadConfig } from '../../src/bootstrap/config';
import { startHub } from '../../src/bootstrap/main';
import { tempDataDir } from '../support/hub-process';

jest.setTimeout(120_000);

const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `rts_token_check_${process.pid}_${randomBytes(4).toString('hex')}`;
const SECRET_A = randomBytes(32).toString('hex');
const SECRET_B = randomBytes(32).toString('hex');
const dirs: { dir: string; remove(): void }[] = [];
const newDir = () => {
  const d = tempDataDir('rts-token-check-');
  dirs.push(d);
  return d.dir;
};

// Every hub on the store shares the hub key file, as the README says they must (that check is not this test's).
let hubKeysFile = '';
beforeAll(async () => {
  hubKeysFile = (await loadHubKeys({ dataDir: newDir() })).file;
});

afterAll(async () => {
  for (const d of dirs) d.remove();
  const admin = new Client({ connectionString });
  await admin.connect();
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

const start = (env: Record<string, string>, dataDir = newDir()) =>
  startHub(
    loadConfig({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: connectionString, RTS_POSTGRES_SCHEMA: schema, RTS_PSEUDONYM_SECRET: 'cd'.repeat(32), RTS_HUB_KEYS_FILE: hubKeysFile, RTS_DATA_DIR: dataDir, RTS_HTTP_PORT: '0', RTS_LOG_LEVEL: 'silent', ...env }),
    pino({ level: 'silent' }),
  );

const refusal = async (env: Record<string, string>, dataDir?: string): Promise<string> => {
  const error = await start(env, dataDir).then(
    async (hub) => {
      await hub.stop();
      return null;
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return (error as Error).message;
};

it('records the first hub\'s way, refuses another secret, claims, RTS_AUTH=off, or a generated secret, and takes a deliberate change once', async () => {
  // Two hubs with one secret: a token signed with it is accepted by either.
  const first = await start({ RTS_AUTH_JWT_SECRET: SECRET_A });
  const second = await start({ RTS_AUTH_JWT_SECRET: SECRET_A }).catch(async (error: unknown) => {
    await first.stop();
    throw error;
  });
  try {
    const claims = { sub: 'operator-1', role: 'operator' as const };
    const options = { issuer: 'telemed-rts', audience: 'telemed-rts', ttlSeconds: 300 };
    const token = await signToken(Buffer.from(SECRET_A, 'hex'), claims, options);
    const foreign = await signToken(Buffer.from(SECRET_B, 'hex'), claims, options);
    const statusOf = async (url: string, bearer: string) => {
      const response = await fetch(`${url}/experts`, { headers: { authorization: `Bearer ${bearer}` } });
      await response.text();
      return response.status;
    };
    for (const hub of [first, second]) {
      expect(await statusOf(hub.url, token)).toBe(200);
      expect(await statusOf(hub.url, foreign)).toBe(401);
    }
  } finally {
    await first.stop();
    await second.stop();
  }

  const otherSecret = await refusal({ RTS_AUTH_JWT_SECRET: SECRET_B });
  expect(otherSecret).toMatch(/^  RTS_AUTH_JWT_SECRET: the store's hub processes verify tokens with an HS256 secret with fingerprint [0-9a-f]{12} /m);
  expect(otherSecret).toContain('RTS_AUTH_CHANGE=on');
  expect(otherSecret).not.toContain(SECRET_A);
  expect(otherSecret).not.toContain(SECRET_B);

  // The hazard as it happens: a new hub without RTS_AUTH_JWT_SECRET generates a secret of its own.
  expect(await refusal({})).toMatch(/^  RTS_AUTH_JWT_SECRET: /m);
  expect(await refusal({ RTS_AUTH: 'off' })).toMatch(/^  RTS_AUTH: .*this one would with no token verification \(RTS_AUTH=off\)/m);
  expect(await refusal({ RTS_AUTH_JWT_SECRET: SECRET_A, RTS_AUTH_AUDIENCE: 'another' })).toMatch(/^  RTS_AUTH_ISSUER\/RTS_AUTH_AUDIENCE: /m);
  expect(await refusal({ RTS_AUTH_JWKS_URL: 'https://idp.invalid/jwks.json' })).toMatch(/^  RTS_AUTH_JWKS_URL: .*this one would with the identity provider's keys at https:\/\/idp\.invalid\/jwks\.json/m);

  // The deployment moves to a new secret: the first start says so, the next find it, the old one is refused.
  await (await start({ RTS_AUTH_JWT_SECRET: SECRET_B, RTS_AUTH_CHANGE: 'on' })).stop();
  await (await start({ RTS_AUTH_JWT_SECRET: SECRET_B })).stop();
  expect(await refusal({ RTS_AUTH_JWT_SECRET: SECRET_A })).toMatch(/^  RTS_AUTH_JWT_SECRET: /m);
});

it('the embedded profile does not check: one process per SQLite store, rotated by a restart with a new secret', async () => {
  const dir = newDir();
  const sqlite = (env: Record<string, string>) =>
    startHub(loadConfig({ RTS_DATA_DIR: dir, RTS_HTTP_PORT: '0', RTS_LOG_LEVEL: 'silent', ...env }), pino({ level: 'silent' }));
  await (await sqlite({ RTS_AUTH_JWT_SECRET: SECRET_A })).stop();
  await (await sqlite({ RTS_AUTH_JWT_SECRET: SECRET_B })).stop();
});
