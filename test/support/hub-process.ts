import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { listensOn, settled, spawnChild } from './children';
import { tempDir } from './temp-dir';

/** The built hub (dist/), started as `npm start` starts it, on a free port with its own data directory. */
export type HubProcess = Readonly<{
  url: string;
  port: number;
  dataDir: string;
  child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far (its JSON log lines). */
  output(): string;
  /** SIGTERM and wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
}>;

export const freePort = (): Promise<number> =>
  new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? ok(address.port) : fail(new Error('no port'))));
    });
  });

/** A data dir for a hub process, made on first use (tempDir). */
export const tempDataDir = (prefix = 'rts-e2e-'): { readonly dir: string; remove(): void } => tempDir(prefix);

const MAIN = resolve(__dirname, '..', '..', 'dist', 'bootstrap', 'main.js');

export const startHub = async (options: { dataDir: string; port?: number; env?: Record<string, string>; cwd?: string }): Promise<HubProcess> => {
  // freePort's port is free when it answers, not when the hub binds it: another test's server may take it between.
  // Then this hub exits (EADDRINUSE, code 78) while the other server answers /health, and the test talked to a
  // stranger (once, it seems: a graceful-shutdown test read another store and got 404 unknown_patient). So /health
  // counts only once the listening socket is the child's own (listensOn), and a port taken meanwhile is tried
  // again with another.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startHubOnce(options);
    } catch (error) {
      if (!(error instanceof PortTakenError) || options.port !== undefined || attempt >= 3) throw error;
    }
  }
};

class PortTakenError extends Error {}


const startHubOnce = async (options: { dataDir: string; port?: number; env?: Record<string, string>; cwd?: string }): Promise<HubProcess> => {
  const port = options.port ?? (await freePort());
  const child = spawnChild(process.execPath, [MAIN], {
    cwd: options.cwd,
    env: { ...process.env, RTS_HTTP_PORT: String(port), RTS_DATA_DIR: options.dataDir, RTS_LOG_LEVEL: 'info', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = settled(child).then(({ code }) => code);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) {
      await exited; // its last lines read
      const message = `hub exited during start (code ${child.exitCode}):\n${out}`;
      throw out.includes('EADDRINUSE') || out.includes('another program listens on this port') ? new PortTakenError(message) : new Error(message);
    }
    if (listensOn(child.pid!, port)) {
      try {
        const res = await fetch(`${url}/health`);
        if (res.ok) break;
      } catch {
        /* not answering yet */
      }
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`hub did not become healthy:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    port,
    dataDir: options.dataDir,
    child,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
};

/**
 * A token from the hub's development login (on by default for the embedded profile on loopback), as the page
 * and the CLI get theirs: e.g. devToken(url, { role: 'patient', patient: '251248-1234' }).
 */
export const devToken = async (
  url: string,
  claims: { role: 'patient' | 'clinician' | 'system' | 'operator'; patient?: string; systemId?: string; sub?: string },
): Promise<string> => {
  const res = await fetch(`${url}/auth/dev-login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(claims) });
  if (!res.ok) throw new Error(`dev-login refused: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
};
