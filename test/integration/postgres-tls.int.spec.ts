// The hub on a PostgreSQL that takes TLS only, as a store on another host should: RTS_POSTGRES_URL with
// sslmode=verify-full and sslrootcert. The server is the test's own (test/support/private-postgres.ts), since the
// machine's shared one must stay as it is. Also what must be refused: no encryption, a certificate the hub cannot
// verify, and one made out for another name. That last one passed with pg 8.16: for an IP address, pg never told
// Node which host it meant, so Node checked the certificate against "localhost" (node-postgres #2263, fixed in 8.23).
import { join, resolve } from 'node:path';
import pino from 'pino';
import pg from 'pg';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub, type RunningHub } from '../../src/bootstrap/main';
import { runChild } from '../support/children';
import { freePort, tempDataDir } from '../support/hub-process';
import { privatePostgresSupport, startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres';

jest.setTimeout(120_000);

const ROOT = resolve(__dirname, '..', '..');
const support = privatePostgresSupport();
if (!support.ok) console.warn(`postgres-tls: skipped: ${support.reason}`);

(support.ok ? describe : describe.skip)('the hub on a PostgreSQL that takes TLS only', () => {
  let server: PrivatePostgres;
  const dirs: Array<{ remove(): void }> = [];
  const tempDir = () => {
    const dir = tempDataDir('rts-postgres-tls-');
    dirs.push(dir);
    return dir.dir;
  };
  const verifyFull = () => `sslmode=verify-full&sslrootcert=${server.caFile}`;
  /** The hub's start, as its own process, expected to fail: exit code and what it printed (a hub that starts after
   *  all is stopped after 20 s, and its exit code is then not 1). */
  const failedStart = async (url: string) => {
    const run = await runChild(process.execPath, ['-r', join(ROOT, 'test', 'support', 'ts-register.js'), join(ROOT, 'src', 'bootstrap', 'main.ts')], {
      cwd: ROOT,
      env: { ...process.env, RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: url, RTS_DATA_DIR: tempDir(), RTS_HTTP_PORT: String(await freePort()), RTS_LOG_LEVEL: 'warn' },
      interruptAfterMs: 20_000,
    });
    return { code: run.code, output: run.out + run.err };
  };

  beforeAll(async () => {
    server = await startPrivatePostgres({ certificateNames: ['IP:127.0.0.1'] });
  });
  afterAll(async () => {
    await server?.stop();
    for (const dir of dirs) dir.remove();
  });

  it('stores and answers with verify-full and the CA, every connection encrypted', async () => {
    let hub: RunningHub | undefined;
    try {
      const config = loadConfig({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: server.url(verifyFull()), RTS_DATA_DIR: tempDir(), RTS_HTTP_PORT: '0', RTS_AUTH: 'off' });
      hub = await startHub(config, pino({ level: 'silent' }));
      const base = hub.url;
      const upload = await fetch(`${base}/observations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ observationId: 'tls-1', patientId: '251248-1234', systolic: 126, diastolic: 70 }),
      });
      expect(upload.status).toBe(201);
      const { uniqueId } = (await upload.json()) as { uniqueId: string };
      const week = (await (await fetch(`${base}/patients/251248-1234/observations`)).json()) as { observations: Array<{ uniqueId: string }> };
      expect(week.observations.map((o) => o.uniqueId)).toEqual([uniqueId]);

      // The server itself says so: every client connection to it is TLS (this probe's own included).
      const probe = new pg.Client({ connectionString: server.url(verifyFull()) });
      await probe.connect();
      try {
        const { rows } = await probe.query(`SELECT count(*)::int AS clients, count(*) FILTER (WHERE s.ssl)::int AS encrypted
                                              FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.backend_type = 'client backend'`);
        expect(rows[0].clients).toBeGreaterThan(1);
        expect(rows[0].encrypted).toBe(rows[0].clients);
      } finally {
        await probe.end();
      }
    } finally {
      await hub?.stop();
    }
  });

  it('refuses to start without encryption, or with a certificate it cannot verify, and says why', async () => {
    // A rule of pg_hba.conf is configuration: exit 78 (not 1, which a service manager restarts for ever), with the
    // server's words that say which rule.
    const plain = await failedStart(server.url('sslmode=disable'));
    expect(plain.code).toBe(78);
    expect(plain.output).toContain('refused the login (28000: no pg_hba.conf entry for host "127.0.0.1", user "postgres", database "postgres", no encryption)');

    const untrusted = await failedStart(server.url('sslmode=verify-full'));
    expect(untrusted.code).toBe(1);
    expect(untrusted.output).toContain('self-signed certificate');
  });

  it('refuses a certificate made out for another name than the address it connects to', async () => {
    await server.restartWithCertificate(['DNS:localhost']);
    try {
      const other = await failedStart(server.url(verifyFull()));
      expect(other.code).toBe(1);
      expect(other.output).toContain("Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 is not in the cert's list");
    } finally {
      await server.restartWithCertificate(['IP:127.0.0.1']);
    }
  });
});
