// One client that pipelines thousands of requests on one connection and never reads its answers (found in a soak
// test: 2000 x GET /openapi.json in one 78 KB write made the hub build and hold 2000 answers, RSS +360 MB, and
// /health time out for others). The connection is cut at the per-connection limit of requests in flight; clients
// that read their answers, one request at a time on a kept-alive connection or a few pipelined, are not affected.
import { mkdtempSync } from 'node:fs';
import { Agent, get as httpGet } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { HttpServer } from '../../src/adapters/http/server';
import { closeServerAndStore, httpServerOver, listenOnLoopback } from '../support/http-app';
import type { EventStore } from '../../src/application/ports/event-store';
import { loadConfig } from '../../src/bootstrap/config';
import { TOKENS, buildContainer } from '../../src/bootstrap/container';

const LIMIT = 32;
const logLines: Record<string, unknown>[] = [];
const logger = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _e, done) => (logLines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>), done()) }));

let dataDir = '';
let store: EventStore;
let http: HttpServer;
let port = 0;
/** Route handlers reached (each builds an answer). */
let handled = 0;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'telemed-http-pipelining-'));
  const config = loadConfig({ RTS_DATA_DIR: dataDir, RTS_AUTH: 'off', RTS_PSEUDONYM_SECRET: 'ab'.repeat(32) });
  const container = buildContainer(config, logger);
  store = container.get<EventStore>(TOKENS.EventStore);
  http = httpServerOver(container, logger, {
    beforeRoutes: (app) => app.addHook('preHandler', async () => void handled++),
  });
  port = await listenOnLoopback(http);
});

afterAll(() => closeServerAndStore(http, store, dataDir));

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));
const health = (): Promise<number> => new Promise((resolve, reject) => httpGet({ host: '127.0.0.1', port, path: '/health', agent: false }, (res) => (res.resume(), resolve(res.statusCode!))).on('error', reject));

describe('pipelined requests per connection', () => {
  it('cuts a connection that pipelines 2000 requests without reading: at most the limit are handled, and others are answered meanwhile', async () => {
    handled = 0;
    const before = logLines.length;
    const socket: Socket = connect(port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    let closed = false;
    socket.on('close', () => (closed = true));
    socket.on('error', () => undefined);
    socket.pause(); // never reads
    socket.write('GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(2000));
    expect(await health()).toBe(200);
    await settle(1000);
    expect(await health()).toBe(200);
    // The cut connection's requests: at most LIMIT reached a handler (the /health probes are two more).
    expect(handled).toBeLessThanOrEqual(LIMIT + 2);
    expect(handled).toBeGreaterThan(2);
    socket.resume(); // let its close be seen
    for (let i = 0; i < 50 && !closed; i++) await settle(20);
    expect(closed).toBe(true);
    const warned = logLines.slice(before).filter((l) => String(l['msg']).startsWith('connection cut'));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: 40, limit: LIMIT });
    expect(JSON.stringify(warned[0])).not.toContain('openapi');
    socket.destroy();
  });

  it('answers every request of a client that reads: kept alive one at a time (no reconnects), or a few pipelined', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const sockets = new Set<unknown>();
      for (let i = 0; i < 200; i++) {
        const status = await new Promise<number>((resolve, reject) =>
          httpGet({ host: '127.0.0.1', port, path: '/health', agent }, (res) => {
            sockets.add(res.socket);
            res.resume();
            res.on('end', () => resolve(res.statusCode!));
          }).on('error', reject),
        );
        expect(status).toBe(200);
      }
      expect(sockets.size).toBe(1);
    } finally {
      agent.destroy();
    }
    // 20 pipelined in one write, read as they come: all answered on the one connection.
    const answers = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      let got = '';
      socket.on('data', (d) => {
        got += d.toString('latin1');
        if ((got.match(/HTTP\/1\.1 200/g) ?? []).length === 20) (socket.destroy(), resolve(got));
      });
      socket.on('close', () => resolve(got));
      socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(20));
    });
    expect((answers.match(/HTTP\/1\.1 200/g) ?? []).length).toBe(20);
  });
});
