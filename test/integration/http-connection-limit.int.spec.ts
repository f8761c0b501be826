// RTS_HTTP_MAX_CONNECTIONS: a hub holds at most that many HTTP connections open. One more is closed as it is
// accepted, without an answer, while the connections already open are served as before; once one of them closes,
// a new one is accepted again. /metrics counts the refusals, and the log says so once, not once per connection.
// Without the cap a client that opened connections and kept them took every descriptor of the process.
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub, type RunningHub } from '../../src/bootstrap/main';

jest.setTimeout(60_000);

const CAP = 3;
const lines: Record<string, unknown>[] = [];
const logger = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>), done()) }));

let dataDir = '';
let hub: RunningHub;
let port = 0;
const opened: KeptAlive[] = [];

/** One kept-alive HTTP/1.1 connection, driven by hand: a request at a time, the answer read by its Content-Length. */
class KeptAlive {
  private buffer = Buffer.alloc(0);
  private waiting: (() => void) | null = null;
  received = 0;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received += chunk.length;
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.waiting?.();
    });
    socket.on('error', () => undefined); // a refused connection may see ECONNRESET
    this.closed = new Promise((resolve) => socket.once('close', () => (this.waiting?.(), resolve())));
  }

  static open(): Promise<KeptAlive> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        const c = new KeptAlive(socket);
        opened.push(c);
        resolve(c);
      });
      socket.once('error', reject);
    });
  }

  async get(path: string): Promise<{ status: number; body: string }> {
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end >= 0) {
        const head = this.buffer.subarray(0, end).toString('latin1');
        const length = Number(/^content-length:\s*(\d+)/im.exec(head)?.[1] ?? 'NaN');
        if (this.buffer.length >= end + 4 + length) {
          const body = this.buffer.subarray(end + 4, end + 4 + length).toString('utf8');
          this.buffer = this.buffer.subarray(end + 4 + length);
          expect(head).not.toMatch(/^connection:\s*close/im);
          return { status: Number(head.split(' ')[1]), body };
        }
      }
      if (this.socket.destroyed || Date.now() > deadline) throw new Error(`no whole answer to GET ${path} (connection ${this.socket.destroyed ? 'closed' : 'open'})`);
      await new Promise<void>((resolve) => {
        this.waiting = resolve;
        setTimeout(resolve, 100);
      });
      this.waiting = null;
    }
  }

  close(): Promise<void> {
    this.socket.end();
    return this.closed;
  }
}

const metric = (text: string, name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 'NaN');

/** Resolves true when the server closed the connection within `ms` without sending a byte. */
const closedUnanswered = async (c: KeptAlive, ms = 5_000): Promise<boolean> => {
  c.socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  let timer: NodeJS.Timeout | undefined;
  const closed = await Promise.race([c.closed.then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)))]);
  clearTimeout(timer);
  return closed && c.received === 0;
};

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'rts-connection-limit-'));
  const config = loadConfig({ RTS_DATA_DIR: dataDir, RTS_HTTP_PORT: '0', RTS_AUTH: 'off', RTS_HTTP_MAX_CONNECTIONS: String(CAP), RTS_SHUTDOWN_GRACE_MS: '1000' });
  hub = await startHub(config, logger);
  port = Number(new URL(hub.url).port);
});

afterAll(async () => {
  for (const c of opened) c.socket.destroy();
  await hub?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

it('closes connections over the cap at once, serves the open ones, accepts again once one closes, and counts the refusals', async () => {
  expect(lines.find((l) => l['msg'] === 'telemed-rts listening')).toMatchObject({ maxConnections: CAP });
  const kept = [await KeptAlive.open(), await KeptAlive.open(), await KeptAlive.open()];
  for (const c of kept) expect((await c.get('/health')).status).toBe(200);

  // The cap is reached: the next connections are closed without an answer, three in a row.
  for (let i = 0; i < 3; i++) expect(await closedUnanswered(await KeptAlive.open())).toBe(true);

  // The open ones are served as before, more than once each (kept alive).
  for (const c of kept) {
    expect((await c.get('/health')).status).toBe(200);
    expect((await c.get('/openapi.json')).status).toBe(200);
  }
  const scraped = await kept[0]!.get('/metrics');
  expect(scraped.status).toBe(200);
  expect(metric(scraped.body, 'rts_http_connections_refused_total')).toBe(3);
  expect(metric(scraped.body, 'rts_http_connections_open')).toBe(CAP);
  expect(metric(scraped.body, 'rts_http_connections_max')).toBe(CAP);

  // One warning for the three refusals, without the clients' addresses.
  const warnings = lines.filter((l) => String(l['msg']).startsWith('HTTP connections refused'));
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toMatchObject({ level: 40, limit: CAP, open: CAP });
  expect(JSON.stringify(warnings[0])).not.toContain('remote');

  // One closes: a new connection is accepted and served.
  await kept[2]!.close();
  const deadline = Date.now() + 10_000;
  while (metric((await kept[0]!.get('/metrics')).body, 'rts_http_connections_open') !== CAP - 1) {
    if (Date.now() > deadline) throw new Error('the hub did not see the connection close');
    await new Promise((r) => setTimeout(r, 50));
  }
  const fresh = await KeptAlive.open();
  expect((await fresh.get('/health')).status).toBe(200);
  const after = (await kept[0]!.get('/metrics')).body;
  expect(metric(after, 'rts_http_connections_open')).toBe(CAP);
  expect(metric(after, 'rts_http_connections_refused_total')).toBe(3);

  // Full again: refused again, and the others still served.
  expect(await closedUnanswered(await KeptAlive.open())).toBe(true);
  expect((await kept[1]!.get('/health')).status).toBe(200);
  expect(metric((await fresh.get('/metrics')).body, 'rts_http_connections_refused_total')).toBe(4);
});
