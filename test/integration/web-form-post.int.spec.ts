// POST /app/: the patient page's forms sent without its script (web-routes.ts) answered 303 ./ before the body is
// read, on a raw socket: a body that is large, slow, chunked or behind Expect: 100-continue is neither waited for
// nor kept, the connection is closed as the answer says, and the request is logged and counted once, without the
// CPR number the form carried. The browser's side (the page comes back) is web.e2e.spec.ts's.
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { registerMetricsRoutes } from '../../src/adapters/http/metrics-routes';
import type { HttpServer } from '../../src/adapters/http/server';
import { closeServerAndStore, httpServerOver, listenOnLoopback } from '../support/http-app';
import { CONTENT_SECURITY_POLICY } from '../../src/adapters/http/web-routes';
import { MetricsRegistry } from '../../src/adapters/metrics/registry';
import type { EventStore } from '../../src/application/ports/event-store';
import { loadConfig } from '../../src/bootstrap/config';
import { TOKENS, buildContainer } from '../../src/bootstrap/container';

// fastify's inject (light-my-request) requires `cookie`, ESM only: jest gets the module as Node loads it (as in
// http-api.int.spec.ts).
jest.mock('cookie', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('cookie') as unknown;
});

const CPR = '0707894821';
const logLines: string[] = [];
const logger = pino({ level: 'trace' }, new Writable({ write: (chunk: Buffer, _e, done) => (logLines.push(chunk.toString('utf8')), done()) }));
const metrics = new MetricsRegistry();

let dataDir = '';
let store: EventStore;
let http: HttpServer;
let port = 0;

/**
 * Sends `bytes` on a new connection and never more (the rest of a body it announced stays owed); resolves with what
 * the hub wrote once the hub closes the connection. The hub's body timer is set far beyond the test's timeout: a hub
 * that waited for the body would leave this pending, and the test would fail on its timeout.
 */
const untilClosed = (bytes: string): Promise<string> =>
  new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    socket.on('data', (d) => (got += d.toString('utf8')));
    socket.on('close', () => resolve(got));
    socket.on('error', () => undefined);
    socket.write(bytes);
  });

/** The answers in what the hub wrote: status and headers (lower-case names) of each, 1xx included. */
const answers = (written: string): { status: number; headers: Record<string, string> }[] =>
  written
    .split(/(?=HTTP\/1\.1 \d{3} )/)
    .filter((part) => part.startsWith('HTTP/1.1 '))
    .map((part) => {
      const [head = ''] = part.split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      return { status: Number(statusLine.split(' ')[1]), headers: Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()])) };
    });

const requestLines = (from: number) => logLines.slice(from).filter((line) => (JSON.parse(line) as { msg?: string }).msg === 'request').map((line) => JSON.parse(line) as Record<string, unknown>);
const counted = () => Number(/rts_http_requests_total\{method="POST",route="\/app\/",status="303"\} (\d+)/.exec(metrics.render())?.[1] ?? 0);

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'telemed-web-form-post-'));
  const config = loadConfig({ RTS_DATA_DIR: dataDir, RTS_LOG_LEVEL: 'trace', RTS_AUTH: 'off', RTS_PSEUDONYM_SECRET: 'ab'.repeat(32) });
  const container = buildContainer(config, logger);
  store = container.get<EventStore>(TOKENS.EventStore);
  http = httpServerOver(container, logger, {
    metrics,
    requestTimeoutMs: 600_000,
  });
  registerMetricsRoutes(http.app, { metrics });
  port = await listenOnLoopback(http);
});

afterAll(() => closeServerAndStore(http, store, dataDir));

const FORM = 'application/x-www-form-urlencoded';

it.each([
  ['10 MB announced, a few bytes sent', `POST /app/ HTTP/1.1\r\nHost: x\r\nContent-Type: ${FORM}\r\nContent-Length: 10485760\r\n\r\ncpr=${CPR.slice(0, 6)}`, [303]],
  ['chunked, the last chunk never sent', `POST /app/ HTTP/1.1\r\nHost: x\r\nContent-Type: ${FORM}\r\nTransfer-Encoding: chunked\r\n\r\n4\r\ncpr=\r\n6\r\n${CPR.slice(0, 6)}\r\n`, [303]],
  ['Expect: 100-continue, no body sent', `POST /app/ HTTP/1.1\r\nHost: x\r\nContent-Type: ${FORM}\r\nContent-Length: 10485760\r\nExpect: 100-continue\r\n\r\n`, [100, 303]],
])('a form body not (yet) whole (%s): 303 ./ with the page\'s headers, the connection closed without waiting for the body, one log line and one count', async (_name, request, statuses) => {
  const before = logLines.length;
  const countedBefore = counted();
  const got = answers(await untilClosed(request));
  expect(got.map((a) => a.status)).toEqual(statuses);
  const redirect = got[got.length - 1]!.headers;
  expect(redirect).toEqual(expect.objectContaining({
    location: './',
    'cache-control': 'no-store',
    connection: 'close',
    'content-security-policy': CONTENT_SECURITY_POLICY,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-request-id': expect.stringMatching(/^[0-9a-f-]{36}$/),
  }));
  // Logged and counted once, under the route's pattern; the form's digits reach no log line.
  expect(requestLines(before)).toEqual([expect.objectContaining({ method: 'POST', route: '/app/', status: 303, requestId: redirect['x-request-id'] })]);
  expect(counted()).toBe(countedBefore + 1);
  expect(logLines.slice(before).join('')).not.toContain(CPR.slice(0, 6));
});

it('a whole form body with a request pipelined behind it: the 303, and the next request answered or the 303 saying the connection closes', async () => {
  const form = `cpr=${CPR}`;
  const got = answers(await untilClosed(`POST /app/ HTTP/1.1\r\nHost: x\r\nContent-Type: ${FORM}\r\nContent-Length: ${form.length}\r\n\r\n${form}GET /app/app.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
  expect(got[0]).toEqual(expect.objectContaining({ status: 303, headers: expect.objectContaining({ location: './' }) }));
  // Never dropped unannounced: a client is told to send it again (RFC 9112 9.6) when it is not answered.
  if (got.length === 1) expect(got[0]!.headers['connection']).toBe('close');
  else expect(got.map((a) => a.status)).toEqual([303, 200]);
});

it.each([
  ['PUT /app/', 405, 'GET, HEAD, POST'],
  ['DELETE /app/', 405, 'GET, HEAD, POST'],
  ['PATCH /app/', 405, 'GET, HEAD, POST'],
  ['POST /app', 405, 'GET, HEAD'],
  ['POST /app/index.html', 404, undefined],
  ['POST /app/?x=1', 303, undefined],
])('%s: %s', async (request, status, allow) => {
  const [method, url] = request.split(' ') as [string, string];
  const got = answers(await untilClosed(`${method} ${url} HTTP/1.1\r\nHost: x\r\nContent-Type: ${FORM}\r\nContent-Length: 14\r\nConnection: close\r\n\r\ncpr=${CPR}`));
  expect(got.map((a) => a.status)).toEqual([status]);
  expect(got[0]!.headers['allow']).toBe(allow);
  if (status === 303) expect(got[0]!.headers['location']).toBe('./');
  else expect(got[0]!.headers['content-type']).toBe('application/problem+json; charset=utf-8');
});
