// What reaches the HTTP server below fastify's routes: requests that are not HTTP, and requests during shutdown.
// Found by a privacy audit: with RTS_LOG_LEVEL=trace, fastify's own client-error line logged `rawPacket`, the whole
// raw request (a working bearer token, the CPR number in the path and body), and the answers were not problem+json.
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { HttpServer } from '../../src/adapters/http/server';
import { closeServerAndStore, httpServerOver, listenOnLoopback } from '../support/http-app';
import type { EventStore } from '../../src/application/ports/event-store';
import { loadConfig } from '../../src/bootstrap/config';
import { TOKENS, buildContainer } from '../../src/bootstrap/container';

// fastify's inject (light-my-request) requires `cookie`, ESM only: jest gets the module as Node loads it (as in
// http-api.int.spec.ts).
jest.mock('cookie', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('cookie') as unknown;
});

const CPR = '070789-4821';
const TOKEN = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwMSJ9.c2lnbmF0dXJlLW9mLWEtcmVhbC10b2tlbg';
const logLines: string[] = [];
const logger = pino({ level: 'trace' }, new Writable({ write: (chunk: Buffer, _e, done) => (logLines.push(chunk.toString('utf8')), done()) }));

let dataDir = '';
let store: EventStore;
let http: HttpServer;
let port = 0;
let releaseHeld: (() => void) | undefined;
/** The held request's answer, once its handler runs (a function, so TypeScript does not narrow the variable). */
const held = (): (() => void) | undefined => releaseHeld;

/** Send raw bytes on a new connection; resolves with everything the server wrote before it closed (or `waitMs`). */
const raw = (bytes: string, waitMs = 2000): Promise<string> =>
  new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    const done = () => (socket.destroy(), resolve(got));
    const timer = setTimeout(done, waitMs);
    socket.on('data', (d) => (got += d.toString('utf8')));
    socket.on('close', () => (clearTimeout(timer), resolve(got)));
    socket.on('error', () => undefined);
    socket.write(bytes);
  });

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'telemed-http-raw-'));
  const config = loadConfig({ RTS_DATA_DIR: dataDir, RTS_LOG_LEVEL: 'trace', RTS_AUTH: 'off', RTS_PSEUDONYM_SECRET: 'ab'.repeat(32) });
  const container = buildContainer(config, logger);
  store = container.get<EventStore>(TOKENS.EventStore);
  http = httpServerOver(container, logger, {
    requestTimeoutMs: 4_000,
  });
  // A route whose answer waits until the test lets it go: a request still pending on its connection.
  http.app.get('/test-held', () => new Promise((answer) => (releaseHeld = () => answer({ held: true }))));
  port = await listenOnLoopback(http);
});

afterAll(() => closeServerAndStore(http, store, dataDir));

const answer = (response: string) => {
  const [head = '', body = ''] = response.split('\r\n\r\n');
  return { status: Number(head.split(' ')[1]), contentType: /content-type: ([^\r\n]+)/i.exec(head)?.[1], requestId: /x-request-id: ([^\r\n]+)/i.exec(head)?.[1], body: body.length > 0 ? (JSON.parse(body) as Record<string, unknown>) : null };
};

/** `promise` settled, or `ms` passed; the timer cleared either way (a 20 s timer left behind held the worker after the file). */
const orAfter = async (promise: Promise<unknown>, ms: number): Promise<void> => {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([promise, new Promise((r) => (timer = setTimeout(r, ms)))]);
  } finally {
    clearTimeout(timer);
  }
};

it('a request that is not HTTP gets a problem+json, and no log line holds the raw request', async () => {
  const body = JSON.stringify({ patientId: CPR, systolic: 217, diastolic: 139 });
  const cases: [string, number][] = [
    [`GET /patients/${CPR}/observations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nX-Bad\u0001: y\r\n\r\n`, 400],
    [`POST /observations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n\r\n${body}`, 400],
    [`GET /patients/${CPR}/observations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nX-Pad: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
  ];
  // One type, one status: invalid_request is 400 in the problem list, so headers over the limit have a type of their own.
  const codes: Record<number, string> = { 400: 'invalid_request', 431: 'request_header_too_large' };
  for (const [request, status] of cases) {
    const rawAnswer = await raw(request);
    expect(rawAnswer.toLowerCase()).toContain('x-content-type-options: nosniff');
    const got = answer(rawAnswer);
    expect({ status: got.status, contentType: got.contentType, requestId: got.requestId, code: got.body?.['code'], type: got.body?.['type'], bodyStatus: got.body?.['status'] }).toEqual({
      status,
      contentType: 'application/problem+json; charset=utf-8',
      requestId: expect.stringMatching(/^[0-9a-f-]{36}$/), // as every answer has one (README)
      code: codes[status],
      type: `/problems/${codes[status]}`,
      bodyStatus: status,
    });
  }
  const log = logLines.join('');
  expect(log).toContain('client error');
  expect(log).not.toContain('rawPacket');
  expect(log).not.toContain(TOKEN);
  expect(log).not.toContain(CPR);
  // The raw packet was logged as a JSON array of bytes: the token's first bytes as numbers.
  expect(log).not.toContain(JSON.stringify([...Buffer.from('Bearer')]).slice(1, -1));
});

it('a request that is not HTTP after a good one on the same connection: the good one is answered and stored first, then the 400', async () => {
  const observationId = 'raw-pipelined-then-garbage-1';
  const body = JSON.stringify({ patientId: CPR, systolic: 131, diastolic: 82, observationId });
  // One write: an upload, then bytes that are no HTTP. The problem answer was written at once, ahead of the upload's
  // answer still being made, and the connection closed under it: the client read the 400 as the upload's answer, and
  // the upload itself was cut off unstored.
  const got = await raw(`POST /observations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}BLAH\u0001 / HTTP/1.1\r\n\r\n`, 10_000);
  const statuses = [...got.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
  expect(statuses).toEqual([201, 400]);
  // Stored: the same upload again is the repeat it is.
  const again = await http.app.inject({ method: 'POST', url: '/observations', payload: JSON.parse(body) as object });
  expect(again.statusCode).toBe(200);
});

it('bytes that are no HTTP, sent on and on behind a pending request, are one client error, not one per chunk', async () => {
  releaseHeld = undefined;
  const before = logLines.length;
  const clientErrors = () => logLines.slice(before).filter((line) => line.includes('client error')).length;
  const socket = connect(port, '127.0.0.1');
  let got = '';
  socket.on('data', (d) => (got += d.toString('utf8')));
  socket.on('error', () => undefined);
  const closed = new Promise((r) => socket.once('close', r));
  socket.write('GET /test-held HTTP/1.1\r\nHost: x\r\n\r\nBLAH\u0001 / HTTP/1.1\r\n\r\n');
  while (held() === undefined || clientErrors() === 0) await new Promise((r) => setTimeout(r, 10));
  // Node's parser stays failed: every further chunk it reads is the client error again. Each one, while the problem
  // waited for the held answer, added a timer and a 'close' listener to the connection for the whole request timeout.
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => socket.write('more bytes that are no HTTP\r\n', r));
    await new Promise((r) => setTimeout(r, 10));
  }
  held()?.();
  await orAfter(closed, 10_000);
  socket.destroy();
  expect([...got.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]))).toEqual([200, 400]);
  expect(clientErrors()).toBe(1);
});

it("a body that is not HTTP (a malformed chunk) gets its 400 at once, not the request timeout's 408; after the answers pending before it", async () => {
  const chunked = (id: string) => `POST /observations HTTP/1.1\r\nHost: x\r\nX-Request-Id: ${id}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\nZZZ\r\n`;
  // The error is the upload's own: its handler waits for a body that can no longer come. The problem waited for that
  // upload's answer, the whole request timeout, and the client got a 408 "the body did not arrive within 4 s".
  const alone = answer(await raw(chunked('bad-chunk-alone'), 10_000));
  expect({ status: alone.status, requestId: alone.requestId, detail: alone.body?.['detail'] }).toEqual({ status: 400, requestId: 'bad-chunk-alone', detail: 'the request could not be read as HTTP' });
  // Behind a request still pending: its answer first, then the problem, with no wait for the upload's.
  releaseHeld = undefined;
  const socket = connect(port, '127.0.0.1');
  let got = '';
  socket.on('data', (d) => (got += d.toString('utf8')));
  socket.on('error', () => undefined);
  const closed = new Promise((r) => socket.once('close', r));
  socket.write(`GET /test-held HTTP/1.1\r\nHost: x\r\n\r\n${chunked('bad-chunk-behind')}`);
  while (held() === undefined) await new Promise((r) => setTimeout(r, 10));
  held()?.();
  await orAfter(closed, 10_000);
  socket.destroy();
  expect([...got.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]))).toEqual([200, 400]);
});

it('a request whose body trickles in gets a problem+json 408 once the request timeout has passed, and its connection is closed', async () => {
  const before = logLines.length;
  const started = Date.now();
  const socket = connect(port, '127.0.0.1');
  let got = '';
  socket.on('data', (d) => (got += d.toString('utf8')));
  const closed = new Promise((r) => socket.once('close', r));
  socket.write(`POST /observations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{`);
  // One byte every half second: never idle, never done.
  const drip = setInterval(() => socket.writable && socket.write(' '), 500);
  await orAfter(closed, 20_000);
  clearInterval(drip);
  socket.destroy();
  const elapsed = Date.now() - started;
  expect(answer(got)).toMatchObject({ status: 408, contentType: 'application/problem+json; charset=utf-8', requestId: expect.stringMatching(/^[0-9a-f-]{36}$/), body: { code: 'request_timeout', type: '/problems/request_timeout', status: 408 } });
  expect(elapsed).toBeGreaterThanOrEqual(3_500);
  expect(elapsed).toBeLessThan(15_000); // not the 300 s of Node, nor never
  // Logged as what the client was answered (it was logged as a 400 of a client that closed the connection).
  const deadline = Date.now() + 5_000;
  while (!logLines.slice(before).join('').includes('request timeout: the body did not arrive within') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const lines = logLines.slice(before).join('');
  expect(lines).toMatch(/"problem":"request_timeout","status":408[^\n]*request timeout: the body did not arrive within/);
  expect(lines).not.toContain('request aborted');
});

it('a request whose headers trickle in gets a problem+json 408, and its connection is closed, not only half-closed', async () => {
  // A client that does not close its side when the hub closes its own (as Node's sockets do by default): it goes on
  // sending, as a slow-header attacker does.
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  let got = '';
  socket.on('data', (d) => (got += d.toString('utf8')));
  socket.on('error', () => undefined);
  const closed = new Promise((r) => socket.once('close', r));
  socket.write('GET /health HTTP/1.1\r\n');
  // One header line every half second: never idle, never done. Answered with the 408, the socket was only ended
  // (the HTTP server's sockets are half-open): the hub went on reading and dropping the lines, and the connection
  // kept its place under RTS_HTTP_MAX_CONNECTIONS as long as the client kept sending.
  const drip = setInterval(() => socket.writable && socket.write('x-a: b\r\n'), 500);
  await orAfter(closed, 20_000);
  clearInterval(drip);
  const wasClosed = socket.destroyed;
  socket.destroy();
  expect(answer(got)).toMatchObject({ status: 408, contentType: 'application/problem+json; charset=utf-8', body: { code: 'request_timeout', status: 408 } });
  expect(wasClosed).toBe(true);
});

it('a body the client abandons (a reset, or the 408 above) is no storage failure: an info line, never the store\'s error', async () => {
  const before = logLines.length;
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  await new Promise((r) => socket.once('connect', r));
  socket.write(`POST /observations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n`);
  await new Promise((r) => setTimeout(r, 300));
  socket.resetAndDestroy();
  const deadline = Date.now() + 5_000;
  while (!logLines.slice(before).join('').includes('request aborted') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const lines = logLines.slice(before).join('');
  expect(lines).toContain('request aborted: the client closed the connection before its body arrived');
  expect(lines).not.toContain('cannot store');
  expect(lines).not.toContain('"level":50');
  // The 408 of the test above cut a body too: it was never taken for the store's failure.
  expect(logLines.join('')).not.toContain('storage_unavailable');
});

it('an answer given before the body arrived closes the connection at once, not after Node\'s own timers', async () => {
  const started = Date.now();
  const socket = connect(port, '127.0.0.1');
  let got = '';
  socket.on('data', (d) => (got += d.toString('utf8')));
  socket.on('error', () => undefined);
  const closed = new Promise((r) => socket.once('close', r));
  // Refused in onRequest (a Content-Encoding the hub does not decode), before any of the body is read.
  socket.write(`POST /observations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n`);
  const drip = setInterval(() => socket.writable && socket.write('1\r\n \r\n'), 500);
  await orAfter(closed, 20_000);
  clearInterval(drip);
  socket.destroy();
  expect(answer(got)).toMatchObject({ status: 415, body: { code: 'unsupported_media_type' } });
  expect(got.toLowerCase()).toContain('connection: close');
  expect(Date.now() - started).toBeLessThan(3_000); // the body timer is 4 s here; Node's keep-alive timers longer
});

it("fastify's inject (no socket, no `complete`) outlives the body timer: no crash, no Connection: close", async () => {
  const res = await http.app.inject({ method: 'POST', url: '/observations', payload: { patientId: CPR, systolic: 126, diastolic: 70 } });
  expect(res.statusCode).toBe(201);
  expect(res.headers['connection']).not.toBe('close');
  // The body timer (4 s here) fires after the answer: it must find no socket to cut, and throw nothing.
  await new Promise((r) => setTimeout(r, 4_500));
});

it('a malformed percent-escape in the path gets a problem+json 400 that does not quote the URL', async () => {
  const got = await raw(`GET /patients/${CPR}%zz/observations HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  expect(answer(got)).toMatchObject({ status: 400, contentType: 'application/problem+json; charset=utf-8', body: { code: 'invalid_request', type: '/problems/invalid_request' } });
  expect(got).not.toContain(CPR);
  expect(got).not.toContain('FST_ERR');
  expect(got.toLowerCase()).toContain('x-request-id:');
  expect(got.toLowerCase()).toContain('cache-control: no-store');
  expect(got.toLowerCase()).toContain('x-content-type-options: nosniff');
});

it('a body labelled with another charset than UTF-8 gets 415, not a parse of its bytes as UTF-8', async () => {
  const body = JSON.stringify({ patientId: CPR, systolic: 126, diastolic: 70 });
  const send = (contentType: string) =>
    raw(`POST /observations HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: ${contentType}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  for (const refused of ['application/json; charset=utf-16', 'application/json;charset="ISO-8859-1"', 'application/xml; charset=utf-16le']) {
    expect({ refused, ...answer(await send(refused)) }).toMatchObject({ refused, status: 415, body: { code: 'unsupported_media_type' } });
  }
  for (const taken of ['application/json; charset=utf-8', 'application/json; charset=UTF8', 'application/json']) {
    expect({ taken, status: answer(await send(taken)).status }).toEqual({ taken, status: 201 });
  }
});

it("HTTP/1.1 without Host and an Expect other than 100-continue get problem+json (400, 417), not Node's bare answers", async () => {
  const noHost = await raw(`GET /patients/${CPR}/observations HTTP/1.1\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`);
  expect(answer(noHost)).toMatchObject({ status: 400, contentType: 'application/problem+json; charset=utf-8', requestId: expect.stringMatching(/^[0-9a-f-]{36}$/), body: { code: 'invalid_request', status: 400, detail: expect.stringContaining('Host') } });
  expect(noHost.toLowerCase()).toContain('connection: close');
  expect(noHost).not.toContain(CPR);
  // Two Host headers: refused (Node kept the first, and a dev login answered a request that named another host too).
  const twoHosts = await raw('POST /auth/dev-login HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}');
  expect(answer(twoHosts)).toMatchObject({ status: 400, contentType: 'application/problem+json; charset=utf-8', requestId: expect.stringMatching(/^[0-9a-f-]{36}$/), body: { code: 'invalid_request', detail: 'a request must carry one Host header, not several' } });
  // HTTP/1.0 has no Host rule: answered as ever.
  expect(answer(await raw('GET /health HTTP/1.0\r\n\r\n')).status).toBe(200);
  const expectation = await raw('POST /observations HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\nX-Request-Id: trace-417\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}');
  expect(answer(expectation)).toEqual({ status: 417, contentType: 'application/problem+json; charset=utf-8', requestId: 'trace-417', body: expect.objectContaining({ code: 'expectation_failed', type: '/problems/expectation_failed', status: 417 }) });
  expect(expectation.toLowerCase()).toContain('connection: close');
  expect(expectation.toLowerCase()).toContain('x-content-type-options: nosniff');
  // 100-continue is met as before.
  const body = JSON.stringify({ patientId: CPR, systolic: 126, diastolic: 70 });
  const continued = await raw(`POST /observations HTTP/1.1\r\nHost: x\r\nConnection: close\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  expect(continued).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 20[01] /);
});

it('a request that comes while the server closes gets a problem+json 503 with Retry-After; the one in flight finishes', async () => {
  // A request in flight: headers and half of its body, so that close() waits for it.
  const body = JSON.stringify({ patientId: '251248-1234', systolic: 126, diastolic: 70, measuredAt: new Date(Date.now() - 60_000).toISOString().slice(0, 19) + 'Z' });
  // The server must have the request in hand (headers read) before the close begins, however busy the machine.
  const seen = new Promise((r) => http.app.server.once('request', r));
  const slow = connect(port, '127.0.0.1');
  let slowAnswer = '';
  slow.on('data', (d) => (slowAnswer += d.toString('utf8')));
  const slowEnded = new Promise((r) => slow.once('close', r));
  slow.write(`POST /observations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`);
  await seen;
  // A second keep-alive connection, opened before the close.
  const other = connect(port, '127.0.0.1');
  await new Promise((r) => other.once('connect', r));
  await new Promise((r) => setTimeout(r, 100));

  const closed = http.close(5_000);
  await new Promise((r) => setTimeout(r, 100));
  const got = await new Promise<string>((resolve) => {
    let text = '';
    other.on('data', (d) => {
      text += d.toString('utf8');
      if (text.includes('\r\n\r\n') && /"status":503/.test(text)) resolve(text);
    });
    other.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
  });
  expect(got).toMatch(/^HTTP\/1\.1 503/);
  expect(got).toMatch(/content-type: application\/problem\+json/i);
  expect(got).toMatch(/retry-after: \d+/i);
  expect(got).toContain('"code":"service_unavailable"');

  slow.write(body.slice(10));
  const closing = Date.now();
  await closed;
  // Not the grace period: the request the test before cut off (408) is no longer counted as in flight.
  expect(Date.now() - closing).toBeLessThan(4_000);
  // The answer was written before the connection was closed; the client reads it by the time its socket ends.
  await orAfter(slowEnded, 5_000);
  expect(slowAnswer).toMatch(/^HTTP\/1\.1 201/);
  other.destroy();
  slow.destroy();
});
