// Starts that fail on a setting or on the database, as an operator meets them (dist/, a child process): each
// names the setting it concerns; a setting that cannot work is exit 78, a database that is down (or DNS that fails
// now) is 69, so that a service manager starts the hub again. Before, these were exit 1 with "Invalid URL", an
// ENOENT, a request-path message about "the last write", or a wrong RTS_HTTP_HOST.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { runChild, settled, spawnChild } from '../support/children';
import { freePort, startHub, tempDataDir } from '../support/hub-process';

/** A "database" that accepts TCP and never answers (a hung server, a firewall dropping after the handshake). */
const silentListener = async (): Promise<{ port: number; connections(): number; close(): Promise<void> }> => {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server: Server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((ok) => server.close(() => ok()));
    },
  };
};

const failedStart = async (env: Record<string, string>): Promise<string> => {
  const data = tempDataDir();
  try {
    await startHub({ dataDir: data.dir, env });
  } catch (error) {
    return (error as Error).message;
  } finally {
    data.remove();
  }
  throw new Error('the hub started');
};

describe('start failures (e2e)', () => {
  it('a database that is down: exit 69 naming RTS_POSTGRES_URL with its host and port, never the password', async () => {
    const port = await freePort(); // nothing listens there
    const out = await failedStart({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: `postgres://postgres:s3cret-pw@127.0.0.1:${port}/rts` });
    expect(out).toMatch(new RegExp(`code 69\\)[\\s\\S]*RTS_POSTGRES_URL: the database at 127\\.0\\.0\\.1:${port} cannot be reached now \\(ECONNREFUSED\\)`));
    expect(out).not.toContain('s3cret-pw');
    expect(out).not.toContain('last write');
  });

  it('a database that accepts the connection and never answers: exit 69 "timed out" naming host and port, within the connect timeout', async () => {
    const silent = await silentListener();
    try {
      const started = Date.now();
      const out = await failedStart({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: `postgres://postgres:s3cret-pw@127.0.0.1:${silent.port}/rts`, RTS_POSTGRES_CONNECT_TIMEOUT_MS: '1500' });
      expect(out).toMatch(new RegExp(`code 69\\)[\\s\\S]*RTS_POSTGRES_URL: the database at 127\\.0\\.0\\.1:${silent.port} cannot be reached now \\(timed out\\)`));
      expect(out).not.toContain('s3cret-pw');
      expect(silent.connections()).toBeGreaterThan(0);
      expect(Date.now() - started).toBeLessThan(15_000); // 1.5 s and Node's start, not forever
    } finally {
      await silent.close();
    }
  });

  it('a SIGTERM while the start waits for the database: one log line, exit 0 (as the exit codes say), not 143', async () => {
    const silent = await silentListener();
    const data = tempDataDir();
    try {
      const child = spawnChild(process.execPath, [resolve(__dirname, '..', '..', 'dist', 'bootstrap', 'main.js')], {
        env: { ...process.env, RTS_HTTP_PORT: String(await freePort()), RTS_DATA_DIR: data.dir, RTS_LOG_LEVEL: 'info', RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: `postgres://postgres@127.0.0.1:${silent.port}/rts`, RTS_POSTGRES_CONNECT_TIMEOUT_MS: '60000' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      const exited = settled(child);
      const deadline = Date.now() + 15_000;
      while (silent.connections() === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(silent.connections()).toBeGreaterThan(0); // it is waiting for the database now
      child.kill('SIGTERM');
      expect(await exited).toEqual({ code: 0, signal: null });
      const lines = out.split('\n').filter((line) => line.includes('stopped during start'));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('"signal":"SIGTERM"');
    } finally {
      await silent.close();
      data.remove();
    }
  });

  it('a SIGTERM while Node still loads the hub\'s modules: the same one line and exit 0, not Node\'s 143', async () => {
    const data = tempDataDir();
    try {
      // The signal is sent by the child itself, from a preload, right after main.js's first import (see the file).
      const preload = resolve(__dirname, '..', 'support', 'sigterm-after-early-signals.js');
      const child = spawnChild(process.execPath, ['--require', preload, resolve(__dirname, '..', '..', 'dist', 'bootstrap', 'main.js')], {
        env: { ...process.env, RTS_HTTP_PORT: String(await freePort()), RTS_DATA_DIR: data.dir, RTS_LOG_LEVEL: 'info' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      const exited = settled(child);
      expect(await exited).toEqual({ code: 0, signal: null });
      expect(out).toContain('test preload: early-signals loaded, sending SIGTERM'); // the signal came in the loading
      expect(out).not.toContain('listening'); // it was stopped before it served
      const lines = out.split('\n').filter((line) => line.includes('stopped during start'));
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0]!)).toMatchObject({ level: 30, signal: 'SIGTERM' });
    } finally {
      data.remove();
    }
  });

  it('an application embedding the package, whose own entry file is called bootstrap/main.js, keeps its signals', async () => {
    // The early stop listeners are for the hub's own main.js only: they matched any entry path ending in
    // bootstrap/main.js, and an embedding service's SIGTERM would have exited 0 with the hub's log line.
    const app = tempDataDir();
    try {
      mkdirSync(join(app.dir, 'bootstrap'));
      const entry = join(app.dir, 'bootstrap', 'main.js');
      writeFileSync(entry, `require(${JSON.stringify(resolve(__dirname, '..', '..', 'dist', 'index.js'))});\nconsole.log(JSON.stringify([process.listenerCount('SIGTERM'), process.listenerCount('SIGINT')]));\n`);
      const run = await runChild(process.execPath, [entry], { env: { ...process.env } });
      expect(run.code).toBe(0);
      expect(JSON.parse(run.out.trim())).toEqual([0, 0]);
    } finally {
      app.remove();
    }
  });

  it('a database host that does not resolve: exit 78 naming RTS_POSTGRES_URL, not RTS_HTTP_HOST', async () => {
    const out = await failedStart({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: 'postgres://postgres@nosuchhost.invalid/rts' });
    expect(out).toMatch(/code 78\)[\s\S]*RTS_POSTGRES_URL: the database host \(nosuchhost\.invalid:5432\) has no address in DNS/);
    expect(out).not.toContain('RTS_HTTP_HOST');
  });

  it('a database that does not exist or a login refused: exit 78 naming RTS_POSTGRES_URL, never the password (it was exit 1, restarted for ever)', async () => {
    const missing = await failedStart({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: 'postgres://postgres@127.0.0.1:5432/rts_no_such_database' });
    expect(missing).toMatch(/code 78\)[\s\S]*RTS_POSTGRES_URL: the database named at 127\.0\.0\.1:5432 does not exist \(3D000: database "rts_no_such_database" does not exist\)/);
    const noRole = await failedStart({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: 'postgres://rts_no_such_role:s3cret-pw@127.0.0.1:5432/test' });
    expect(noRole).toMatch(/code 78\)[\s\S]*RTS_POSTGRES_URL: the database at 127\.0\.0\.1:5432 refused the login \(28000: role "rts_no_such_role" does not exist\)/);
    expect(noRole).not.toContain('s3cret-pw');
  });

  it('a role that may log in but not create the schema: exit 78 naming RTS_POSTGRES_URL and what to grant (it was exit 1)', async () => {
    const admin = new Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/test' });
    await admin.connect();
    const role = `rts_e2e_noperm_${process.pid}`;
    try {
      await admin.query(`CREATE ROLE ${role} LOGIN`);
      const out = await failedStart({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: `postgres://${role}:s3cret-pw@127.0.0.1:5432/test`, RTS_POSTGRES_SCHEMA: `${role}_schema` });
      expect(out).toMatch(/code 78\)[\s\S]*RTS_POSTGRES_URL: the role lacks a privilege the hub needs at 127\.0\.0\.1:5432 \(42501: permission denied for database test\): the hub creates and alters its schema and tables, so make the role own them/);
      expect(out).not.toContain('s3cret-pw');
    } finally {
      await admin.query(`DROP ROLE IF EXISTS ${role}`);
      await admin.end();
    }
  });

  it('a malformed PostgreSQL URL or a CA file that is not there: exit 78 naming RTS_POSTGRES_URL', async () => {
    const badPort = await failedStart({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: 'postgres://u:s3cret-pw@127.0.0.1:99999/db' });
    expect(badPort).toMatch(/code 78\)[\s\S]*RTS_POSTGRES_URL: is not a valid URL/);
    const noCa = await failedStart({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: 'postgres://u:s3cret-pw@127.0.0.1/db?sslmode=verify-full&sslrootcert=/nonexist.pem' });
    expect(noCa).toMatch(/code 78\)[\s\S]*RTS_POSTGRES_URL: sslrootcert: cannot read the file \(ENOENT\)/);
    for (const out of [badPort, noCa]) expect(out).not.toContain('s3cret-pw');
  });

  it('RTS_HTTP_MAX_CONNECTIONS: a bad value or one the descriptor limit cannot hold is exit 78 naming it; unset, the cap fits under the limit', async () => {
    const main = resolve(__dirname, '..', '..', 'dist', 'bootstrap', 'main.js');
    // `ulimit -n` lowers the hard limit too, so Node cannot raise the soft one past it as it starts.
    const underLimit = async (env: Record<string, string>, interruptWhen?: (out: string) => boolean) => {
      const data = tempDataDir();
      try {
        return await runChild('/bin/sh', ['-c', 'ulimit -n 1024 && exec "$0" "$@"', process.execPath, main], {
          env: { ...process.env, RTS_HTTP_PORT: String(await freePort()), RTS_DATA_DIR: data.dir, RTS_LOG_LEVEL: 'info', ...env },
          ...(interruptWhen ? { interruptWhen, interruptAfterMs: 30_000 } : {}),
        });
      } finally {
        data.remove();
      }
    };
    const tooMany = await underLimit({ RTS_HTTP_MAX_CONNECTIONS: '2000' });
    expect(tooMany.code).toBe(78);
    expect(tooMany.err).toMatch(/RTS_HTTP_MAX_CONNECTIONS: more connections than this process may open files for \(its limit is 1024 descriptors.*give at most 896/);
    const malformed = await underLimit({ RTS_HTTP_MAX_CONNECTIONS: '1k' });
    expect(malformed.code).toBe(78);
    expect(malformed.err).toMatch(/RTS_HTTP_MAX_CONNECTIONS: must be a whole number/);

    const fitted = await underLimit({}, (out) => out.includes('"telemed-rts listening"'));
    expect(fitted.code).toBe(0);
    const listening = fitted.out.split('\n').find((line) => line.includes('"telemed-rts listening"'));
    expect(JSON.parse(listening!)).toMatchObject({ maxConnections: 1024 - 128 });
    // Lowered below the default without being asked to: said once, as a warning, before the hub listens.
    const lowered = fitted.out.split('\n').filter((line) => line.includes('lowers the cap on HTTP connections'));
    expect(lowered.map((line) => JSON.parse(line))).toEqual([expect.objectContaining({ level: 40, maxConnections: 896, fileLimit: 1024, default: 1024 })]);
    const explicit = await underLimit({ RTS_HTTP_MAX_CONNECTIONS: '500' }, (out) => out.includes('"telemed-rts listening"'));
    expect(explicit.out).toContain('"maxConnections":500');
    expect(explicit.out).not.toContain('lowers the cap on HTTP connections');
  });

  it('an RTS_HUB_KEYS_FILE that is not there: exit 78 naming it (the hub makes no keys of its own there)', async () => {
    const elsewhere = tempDataDir();
    try {
      const out = await failedStart({ RTS_HUB_KEYS_FILE: join(elsewhere.dir, 'hub-keys.json') });
      expect(out).toMatch(/code 78\)[\s\S]*RTS_HUB_KEYS_FILE: the hub key file does not exist/);
    } finally {
      elsewhere.remove();
    }
  });
});
