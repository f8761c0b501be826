import { FILES_MOVED_CODE } from '../system/files-in-place';
import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { DateTime } from 'luxon';
import type { Logger } from 'pino';
import type { Clock } from '../../application/ports/clock';
import type { TeleMedService } from '../../application/telemed';
import type { XdsBackend } from '../../application/xds-backend';
import { MAX_HL7_BYTES, checkXmlCharacters, parseHl7Observation } from '../../domain/documents/hl7';
import { parseCprBornBy } from '../../domain/monitoring/cpr';
import { ConflictError, UnavailableError, ValidationError } from '../../domain/shared/errors';
import { CLOCK_SKEW_SECONDS, createTeleObservation } from '../../domain/monitoring/tele-observation';
import { MAX_INTERVAL_DAYS, OUTSIDE_RFC3339_YEARS, endOfNow, lastDays, timeInterval } from '../../domain/monitoring/time-interval';
import { installDeprecationHeaders } from './deprecated-routes';
import { illFormedTextDetail, illFormedTextPath, mayHoldIllFormedText } from '../validation/unicode-text';
import type { MetricsRegistry } from '../metrics/registry';
import { limitConnections } from './connection-limit';
import { openApiDocument } from './openapi';
import { isKeptRequestId } from '../../application/audit/request-id';
import { PROBLEM_TYPES, codeOfClientStatus, problem, problemInstance, problemTypeUri, sendProblem, toProblem, type Problem } from './problem';
import { CorrectionBody, CorrectionQuery, DocumentParams, ObservationBody, ObservationQuery, ObservationSearchBody, PatientParams, XML_TYPES, isXml, parseInput } from './schemas';
import { registerWebRoutes } from './web-routes';

/** A correction's body limit, at least: room for an HL7 document of MAX_HL7_BYTES and more (see the route). */
export const CORRECTION_BODY_LIMIT_BYTES = 2 * MAX_HL7_BYTES;

export type HttpDependencies = Readonly<{
  telemed: TeleMedService;
  xds: XdsBackend;
  clock: Clock;
  logger: Logger;
  /** Readiness probe: resolves when the store answers. */
  health: () => Promise<Record<string, unknown>>;
  /** How long GET /health waits for `health` before answering 503 storage_unavailable; default 2 s. */
  healthTimeoutMs?: number;
  bodyLimitBytes?: number;
  /** How long a client may take to send a whole request (headers and body); default 30 s, then 408. */
  requestTimeoutMs?: number;
  /**
   * Requests one connection may have in flight (received, not yet answered); one more and the connection is cut.
   * Default 32. A client that reads its answers has one at a time (browsers, node:http agents) or a few pipelined.
   */
  maxRequestsInFlightPerConnection?: number;
  /**
   * HTTP connections held open at once; one more is closed as it is accepted (connection-limit.ts). Default: no cap
   * (the hub passes RTS_HTTP_MAX_CONNECTIONS, bootstrap/http-connections.ts).
   */
  maxConnections?: number;
  /** The connection gauges and the refusal counter go here (the hub's /metrics). */
  metrics?: MetricsRegistry;
  /** Installs hooks that must precede every route (access control, rate limits, audit: security.ts). */
  beforeRoutes?: (app: FastifyInstance) => void;
}>;

/**
 * A URL fit for a log line: the route pattern when a route matched, and nothing of the URL otherwise (an
 * unmatched URL could hold a CPR number in any encoding).
 */
export const redactUrl = (request: Pick<FastifyRequest, 'url'> & { routeOptions?: { url?: string } }): string =>
  request.routeOptions?.url ?? '(no route)';

/**
 * A `from` without a `to`: the interval ends at endOfNow, the hub's present second and the 5 minutes a reading may
 * lie ahead. A client asking for the last 366 days by its own clock (rts review --days 366) names a `from` up to those
 * 5 minutes more than 366 days before that end, and more when its clock is behind or the second turns between its
 * request and our clock: up to 2 x CLOCK_SKEW_SECONDS more is taken as 366 days (the answer's `from` says so); more
 * than that is still interval_too_wide.
 */
const withClockSlack = (from: DateTime, to: DateTime | null, now: DateTime): DateTime => {
  if (to !== null || !from.isValid) return from;
  const earliest = endOfNow(now).minus({ days: MAX_INTERVAL_DAYS });
  return from < earliest && from >= earliest.minus({ seconds: 2 * CLOCK_SKEW_SECONDS }) ? earliest : from;
};

const UNRESERVED_ESCAPE = /%(2[dDeE]|3[0-9]|[46][1-9a-fA-F]|[57][0-9aA]|5[fF]|7[eE])/g;

/** Fatal: bytes that are not UTF-8 are an error, not U+FFFD. Strips a leading byte order mark. */
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/** The URL with its path's percent-encoded unreserved characters (A-Z a-z 0-9 - . _ ~) decoded; the query as sent. */
export const normalizedPath = (url: string): string => {
  const percent = url.indexOf('%');
  if (percent === -1) return url;
  const query = url.indexOf('?');
  if (query !== -1 && query < percent) return url;
  const path = query === -1 ? url : url.slice(0, query);
  return path.replace(UNRESERVED_ESCAPE, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))) + (query === -1 ? '' : url.slice(query));
};

export { MAX_CHAIN_HOPS } from '../../application/xds-backend';

export type HttpServer = Readonly<{
  app: FastifyInstance;
  /**
   * Graceful close: stop accepting, tell keep-alive clients to go (Connection: close), let in-flight requests
   * finish (their appends commit) for up to `graceMs`, then drop the connections that are left.
   */
  close(graceMs: number): Promise<void>;
  /** Every route registered so far, as 'METHOD /pattern' (HEAD routes fastify adds for GETs left out). */
  routes(): readonly string[];
}>;

/**
 * The id of a request: the caller's X-Request-Id when it is a plain token, so one id follows a request across systems;
 * else a new one. Not when it may hold a CPR number, in any spelling (251248.1234, 251248_1234, 25.12.48-1234,
 * cpr251248-1234), also glued into a longer run of digits (20261201251248-1234, 12512481234: see mayHoldCprDigits,
 * cpr-like.ts): the id is written into every log line of the request, the x-request-id header and the hash-chained
 * audit trail, which erasure cannot reach. A good id matched by chance is only replaced. (isKeptRequestId,
 * application/audit/request-id.ts: also the shape an audit search by request id takes, and the AMQP side's ids.)
 */
const requestIdFrom = (given: unknown): string => (typeof given === 'string' && isKeptRequestId(given) ? given : randomUUID());

/**
 * A raw problem+json answer, then the connection closed: for requests fastify cannot answer itself. With an
 * X-Request-Id as every answer has (a new one where the request could not be read).
 *
 * Closed, not only ended: the HTTP server's sockets are half-open (allowHalfOpen), so `end` closed the hub's side
 * alone, and a client that went on sending (headers one line at a time, past the 408 of the request timeout) kept
 * the connection, read and dropped by the hub, and its place under RTS_HTTP_MAX_CONNECTIONS, for as long as it
 * liked. Destroyed once the answer is written, as Node does itself for an answer with Connection: close.
 */
const endWithProblem = (socket: Duplex, status: number, detail: string, requestId: string = randomUUID()): void => {
  const code = codeOfClientStatus(status);
  const body = JSON.stringify(problem(code, detail, { status: PROBLEM_TYPES[code][0] }));
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/problem+json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${requestId}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n${body}`,
    () => socket.destroy(),
  );
};

export const buildHttpServer = (deps: HttpDependencies): HttpServer => {
  let inFlight = 0;
  const requestTimeoutMs = deps.requestTimeoutMs ?? 30_000;
  /** Requests whose body the body timer answered 408 (below): their connection's end is no client leaving. */
  const bodyTimedOut = new WeakSet<IncomingMessage>();
  let closing = false;
  /** Per connection: its requests not yet answered (the pipelining limit below), and what waits for them to be. */
  const inFlightOf = new WeakMap<object, number>();
  const whenAnsweredOf = new WeakMap<object, { except: ServerResponse | undefined; then: () => void }>();
  /** Per connection: its last request dispatched, while it is not answered (its body may still be on its way). */
  const lastPendingOf = new WeakMap<object, { request: IncomingMessage; response: ServerResponse; id: string }>();
  /** Connections whose bytes could not be read as HTTP: answered (or waiting to be) with one problem. */
  const problemAnswered = new WeakSet<object>();
  /**
   * `then` once every request of this connection dispatched so far is answered (at once when none is pending), or
   * the connection destroyed when that takes longer than the request timeout (an answer under way may be half sent).
   * `except`: a request not waited for (the one whose body could not be read: its answer would never come).
   */
  const afterPendingAnswers = (socket: Duplex, then: () => void, except?: ServerResponse): void => {
    if ((inFlightOf.get(socket) ?? 0) - (except === undefined ? 0 : 1) === 0) return then();
    const timer = setTimeout(() => socket.destroy(), requestTimeoutMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    whenAnsweredOf.set(socket, { except, then: () => (clearTimeout(timer), then()) });
  };
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: deps.bodyLimitBytes ?? 16 * 1024,
    // Headers that trickle in: Node's own request timeout (fastify's default 0 turns it off), checked every second
    // rather than every 30 s. A body that trickles in is the onRequest hook's (Node's timer stops at the headers).
    requestTimeout: requestTimeoutMs,
    // requireHostHeader off: Node's own answer to an HTTP/1.1 request without Host is a bare 400; the first onRequest
    // hook below answers it as a problem.
    http: { connectionsCheckingInterval: Math.min(1000, requestTimeoutMs), requireHostHeader: false },
    genReqId: (req) => requestIdFrom(req.headers['x-request-id']),
    // A path parameter over the router's 100 characters was refused before any route was chosen: a bare 400 "could
    // not be processed", without the route's own problem (invalid_patient_id, errors[]) or a deprecated route's
    // Deprecation header. Each route's schema bounds its parameters; the header limit bounds the URL.
    routerOptions: { maxParamLength: 8 * 1024 },
    // fastify's own request lines off (ours, below, carry the route pattern, not the URL); log lines of a request
    // label its id `requestId`.
    logController: new LogController({ requestIdLogLabel: 'requestId', disableRequestLogging: true }),
    // While closing, new requests get a problem+json 503 with Retry-After from the onRequest hook below, not
    // fastify's own JSON.
    return503OnClosing: false,
    // The router compares a path's fixed segments as sent: /patients/%65xport was not /patients/export but a patient
    // id "export" (422), where /patients/export is that route's only. Percent-encoded unreserved characters equal the
    // characters (RFC 3986 6.2.2.2), so the path is normalized before routing.
    rewriteUrl: (req) => normalizedPath(req.url ?? '/'),
    // A malformed percent-escape in the path (FST_ERR_BAD_URL): fastify answered its own JSON quoting the URL, which
    // may hold a CPR number. A problem, without the URL.
    frameworkErrors: (error, request, reply) => {
      const code = (error as { code?: string }).code;
      request.log.info({ problem: 'invalid_request', fastifyCode: code }, 'request refused');
      const body = problem('invalid_request', code === 'FST_ERR_BAD_URL' ? "the URL's path holds a malformed percent-escape" : 'the request could not be processed as sent');
      return (reply as unknown as FastifyReply).code(400).header('x-request-id', request.id).header('cache-control', 'no-store').header('x-content-type-options', 'nosniff').header('content-type', 'application/problem+json; charset=utf-8').send(body);
    },
    // A request that is not HTTP (a bad header, Content-Length with Transfer-Encoding, headers over the limit).
    // fastify's own handler logs the error with `rawPacket`, the whole raw request (bearer tokens, CPR numbers in
    // the path or the body), and answers JSON that is no problem. Only the parser's code is logged here.
    clientErrorHandler: (error, socket) => {
      const code = (error as { code?: string }).code;
      if (code === 'ECONNRESET' || socket.destroyed) return;
      // Once per connection: Node's parser stays failed, and every further chunk the client sends is this error again.
      // While the problem waited for the pending answers (below), each one added a timer and a 'close' listener, for
      // the whole request timeout: a client sending one byte at a time grew the hub's heap by 170 MB in 12 s.
      if (problemAnswered.has(socket)) {
        if (!socket.writable) socket.destroy();
        return;
      }
      problemAnswered.add(socket);
      // In the body of the connection's last request (a malformed chunk, trailers over the limit, the body's time
      // up): the error is that request's, whose handler waits for a body that can no longer come. Its answer was
      // waited for below, the whole request timeout, then a 408 "the body did not arrive" instead of this problem.
      const last = lastPendingOf.get(socket);
      const inBody = last !== undefined && !last.request.complete && !last.response.headersSent ? last : undefined;
      const status = code === 'HPE_HEADER_OVERFLOW' ? 431 : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      const requestId = inBody?.id ?? randomUUID();
      deps.logger.debug({ code, status, requestId }, 'client error: the request could not be read as HTTP');
      if (!socket.writable) {
        socket.destroy();
        return;
      }
      // After the answers to the requests this connection sent before (pipelined): written at once, the problem went
      // out ahead of them and the connection closed under them, so the client read it as the answer to an upload that
      // was then cut off unstored.
      afterPendingAnswers(socket, () => {
        if (socket.destroyed) return;
        if (!socket.writable) return void socket.destroy();
        endWithProblem(socket, status, status === 431 ? "the request's headers (or its URL) exceed the size limit" : status === 408 ? `the request's ${inBody === undefined ? 'headers' : 'body'} did not arrive in time` : 'the request could not be read as HTTP', requestId);
      }, inBody?.response);
    },
  });

  // An Expect other than 100-continue: Node answered a bare 417 when no one listens for it.
  app.server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
    const body = JSON.stringify(problem('expectation_failed', 'the only expectation the hub meets is Expect: 100-continue; send the request without this Expect header'));
    response.writeHead(417, { 'content-type': 'application/problem+json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'x-request-id': requestIdFrom(request.headers['x-request-id']), 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', connection: 'close' });
    response.end(body);
  });

  limitConnections(app.server, { logger: deps.logger, ...(deps.maxConnections === undefined ? {} : { max: deps.maxConnections }), ...(deps.metrics ? { metrics: deps.metrics } : {}) });

  // One request line in, one out; the URL is the route pattern, so no patient identifier reaches the log.
  const routes: string[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) if (method !== 'HEAD') routes.push(`${method} ${route.url}`);
  });

  // Pipelining without reading: Node parses a whole chunk and dispatches every request in it before its own
  // backpressure (pausing a socket whose answers are not read) can act, so one 78 KB write of 2000 requests made
  // the hub build and hold 2000 answers (+360 MB) and others' requests wait. Requests not yet answered are counted
  // per connection, synchronously as Node dispatches them; beyond the limit the connection is cut and the rest of
  // its requests are dropped unhandled. Unsent output is then bounded by Node: it stops reading a connection whose
  // answers are not being read (socket paused until 'drain'), so at most the limit's answers wait in its buffers.
  const maxInFlight = deps.maxRequestsInFlightPerConnection ?? 32;
  app.addHook('onRequest', (request, reply, done) => {
    const socket = request.raw.socket;
    if (socket.destroyed) {
      reply.hijack(); // a request of a connection already cut: not handled
      return;
    }
    if (request.raw.httpVersion === '1.1' && request.headers.host === undefined) {
      // RFC 9112 3.2: an HTTP/1.1 request without Host is refused (Node's check, turned off above for its bare 400).
      // Before the hook that names every answer: named here (README: every answer carries X-Request-Id).
      reply.header('connection', 'close').header('x-request-id', request.id);
      sendProblem(reply, problem('invalid_request', 'an HTTP/1.1 request must carry a Host header'));
      return;
    }
    // RFC 9112 3.2: more than one Host is refused too (Node keeps the first, and the dev login's loopback check read it).
    if (request.raw.rawHeaders.filter((name, i) => i % 2 === 0 && name.toLowerCase() === 'host').length > 1) {
      reply.header('connection', 'close').header('x-request-id', request.id);
      sendProblem(reply, problem('invalid_request', 'a request must carry one Host header, not several'));
      return;
    }
    const count = (inFlightOf.get(socket) ?? 0) + 1;
    inFlightOf.set(socket, count);
    lastPendingOf.set(socket, { request: request.raw, response: reply.raw, id: request.id });
    reply.raw.once('close', () => {
      const left = (inFlightOf.get(socket) ?? 1) - 1;
      inFlightOf.set(socket, left);
      if (lastPendingOf.get(socket)?.response === reply.raw) lastPendingOf.delete(socket);
      const waiting = whenAnsweredOf.get(socket);
      if (waiting === undefined) return;
      // Every other request answered: the one excepted, still pending, is the connection's last (the parser that
      // failed dispatches no other after it).
      const exceptPending = waiting.except !== undefined && lastPendingOf.get(socket)?.response === waiting.except;
      if (left - (exceptPending ? 1 : 0) !== 0) return;
      whenAnsweredOf.delete(socket);
      waiting.then();
    });
    if (count > maxInFlight) {
      // No URL and nothing of the request: its path may hold a CPR number.
      deps.logger.warn({ limit: maxInFlight, remoteAddress: socket.remoteAddress }, 'connection cut: too many pipelined requests not yet answered (a client that sends without reading its answers)');
      reply.hijack();
      socket.destroy();
      return;
    }
    done();
  });

  app.addHook('onRequest', async (request, reply) => {
    // Counted out when the response closes, whether it was sent or the request was cut off: an aborted request
    // never reaches onResponse, and each one made a graceful shutdown wait out its whole grace period.
    inFlight++;
    reply.raw.once('close', () => inFlight--);
    reply.header('x-request-id', request.id);
    // A body still on its way: it must be whole within the request timeout. A client trickling it a byte at a time
    // held the request, and the caller's connection, for good. Most bodies come with their headers: no timer.
    if (!request.raw.complete) {
      const timer = setTimeout(() => {
        if (request.raw.complete) return;
        if (reply.sent) {
          // Answered early (401, 415, ...) while the body still trickles in: the connection is closed as that answer
          // said (onSend); one that is still open at the timeout is cut, not held for Node's own timers.
          const socket = request.raw.socket as { destroy?: unknown } | undefined;
          if (typeof socket?.destroy === 'function') request.raw.socket.destroy(); // not for fastify's inject, which has no socket
          return;
        }
        bodyTimedOut.add(request.raw);
        deps.logger.debug({ status: 408, route: redactUrl(request) }, 'request timeout: the body did not arrive in time');
        endWithProblem(request.raw.socket, 408, `the request's body did not arrive within ${Math.round(requestTimeoutMs / 1000)} s`, request.id);
      }, requestTimeoutMs);
      timer.unref();
      request.raw.once('end', () => clearTimeout(timer));
      request.raw.once('close', () => clearTimeout(timer));
    }
    if (closing) return sendProblem(reply, problem('service_unavailable', 'the hub is shutting down: send the request again in a moment (or to another hub process)'));
    // The hub decodes no Content-Encoding: a gzip body read as JSON was a misleading malformed_json, and a body
    // labelled br but sent plain was stored as if decoded. RFC 9110 15.5.16: 415 for an unsupported coding.
    // The bodies are read as UTF-8 (RFC 8259 8.1 allows JSON no other): a body labelled charset=utf-16 was read as
    // UTF-8 and answered malformed_json, or taken if its bytes happened to parse.
    const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(String(request.headers['content-type'] ?? ''))?.[1];
    if (charset !== undefined && !/^(utf-?8|us-ascii)$/i.test(charset)) {
      return sendProblem(reply, problem('unsupported_media_type', 'the hub reads request bodies as UTF-8: send charset=utf-8, or no charset'));
    }
    const coding = request.headers['content-encoding'];
    if (coding !== undefined && !/^\s*identity\s*$/i.test(String(coding))) {
      reply.header('accept-encoding', 'identity');
      return sendProblem(reply, problem('unsupported_media_type', 'the hub takes request bodies without a Content-Encoding (no gzip, deflate or br): send the body uncompressed'));
    }
  });
  app.addHook('onSend', async (request, reply) => {
    // An answer before the whole body arrived (a refusal does not wait for it): the rest of the body would have to
    // be read for the connection to carry another request, so it is closed instead (RFC 9112 9.6).
    if (closing || request.raw.complete === false) reply.header('connection', 'close'); // (inject's requests have no `complete`)
    // Answers hold patient data (readings, documents with the CPR number, tokens): no browser or proxy keeps
    // them, unless a route said otherwise (the page's assets, the JWKS).
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    // Every answer is what its Content-Type says: no browser reads a JSON answer or an HL7 document as a page (the
    // page's own assets had it; the API's answers did not).
    reply.header('x-content-type-options', 'nosniff');
  });
  installDeprecationHeaders(app);
  // A full disk fails every write alike: one line per 10 s (with the count of those not logged), not one per request,
  // and one when a write succeeds again.
  let storageLoggedAt: number | null = null;
  let storageUnlogged = 0;
  let storageFailingSince: number | null = null;
  const storageFailedRoutes = new Set<string>();
  const routeKey = (request: FastifyRequest): string => `${request.method} ${request.routeOptions?.url ?? ''}`;
  /** The driver's code of a storage failure (its cause's, else its own): e.g. SQLITE_FULL, ECONNREFUSED. */
  const driverCode = (error: unknown): unknown => (error as { cause?: { code?: unknown } } | null)?.cause?.code ?? (error as { code?: unknown } | null)?.code;
  app.addHook('onResponse', async (request, reply) => {
    request.log.info({ method: request.method, route: redactUrl(request), status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
    // The first 2xx answer of a route that had failed for want of storage: one line that it works again (the
    // outage's length, and the refusals the throttled lines did not count), so the log shows the end of an outage
    // too. A route that failed so, not any write (a token's dev-login stores nothing). A warning, as the error it
    // ends: a hub logging at warn shows both.
    if (storageFailingSince !== null && reply.statusCode < 300 && storageFailedRoutes.has(routeKey(request))) {
      request.log.warn({ failedForMs: Math.round(performance.now() - storageFailingSince), notLoggedSince: storageUnlogged }, 'storing works again: writes are answered again after storage_unavailable');
      storageFailingSince = null;
      storageFailedRoutes.clear();
      storageLoggedAt = null;
      storageUnlogged = 0;
    }
  });

  // Bodies are read as UTF-8 and nothing else: fastify's own reading turned bytes that are not UTF-8 (a legacy
  // system's GBK or GB18030) into U+FFFD and the hub stored the mangled text (201). A byte order mark is ignored.
  const readUtf8 = (body: Buffer, code: 'malformed_json' | 'invalid_request'): string => {
    try {
      return STRICT_UTF8.decode(body);
    } catch {
      throw new ValidationError(code, 'the request body is not UTF-8: send the text encoded as UTF-8 (GBK, GB18030, Latin-1 and UTF-16 are not read)');
    }
  };
  const parseJson = app.getDefaultJsonParser('error', 'error');
  const isJson = (text: string): boolean => {
    try {
      JSON.parse(text);
      return true;
    } catch {
      return false;
    }
  };
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    let text: string;
    try {
      text = readUtf8(body as Buffer, 'malformed_json');
    } catch (error) {
      return done(error as Error, undefined);
    }
    parseJson(request, text, (error, value) => {
      if (error) {
        // Valid JSON that the parser refuses for a "__proto__" (or constructor.prototype) key: it answered "could
        // not be parsed as JSON", which a caller with valid JSON cannot act on. Said so (parsed again only here).
        if ((error as { code?: string }).code === 'FST_ERR_CTP_INVALID_JSON_BODY' && isJson(text)) {
          return done(new ValidationError('malformed_json', 'the request body holds a key named "__proto__" (or "constructor" with "prototype"), which the hub does not accept'), undefined);
        }
        return done(error, undefined);
      }
      // "\ud800" is valid JSON and no character: stored, it became U+FFFD wherever the text was next encoded.
      const illFormed = mayHoldIllFormedText(text) ? illFormedTextPath(value) : null;
      if (illFormed !== null) {
        const path = illFormed === '(message)' ? 'body' : `body.${illFormed}`; // as the zod issues of a body name it
        return done(new ValidationError('invalid_request', `the request body is not Unicode text: ${illFormedTextDetail(path)}`, [{ path, message: 'holds a lone surrogate' }]), undefined);
      }
      done(null, value);
    });
  });
  app.addContentTypeParser([...XML_TYPES], { parseAs: 'buffer' }, (_req, body, done) => {
    try {
      done(null, readUtf8(body as Buffer, 'invalid_request'));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
  // fastify parses text/plain by default; this API takes JSON (and XML for corrections) only: anything else is a 415.
  app.removeContentTypeParser('text/plain');

  app.setErrorHandler((error, request, reply) => {
    // The client went away while its body was on its way (a reset, or the body timer's 408): the body stream fails
    // with ECONNRESET, which is no storage failure (it read as one, and hid a real one in the throttled log line).
    if (!request.raw.complete && ((error as { code?: unknown }).code === 'ECONNRESET' || (error as Error)?.message === 'aborted')) {
      // The body timer's 408 ends the connection too: logged as what the client was answered, not as its leaving.
      if (bodyTimedOut.has(request.raw)) request.log.info({ problem: 'request_timeout', status: 408 }, `request timeout: the body did not arrive within ${Math.round(requestTimeoutMs / 1000)} s`);
      else request.log.info({ problem: 'invalid_request', status: 400 }, 'request aborted: the client closed the connection before its body arrived');
      return sendProblem(reply.header('connection', 'close'), problem('invalid_request', 'the request body did not arrive whole: the connection was closed'));
    }
    const p = toProblem(error, problemInstance(request.url), request.routeOptions?.bodyLimit);
    if (p.code === 'storage_unavailable') {
      const now = performance.now();
      if (storageLoggedAt !== null && now - storageLoggedAt < 10_000) storageUnlogged++;
      else {
        request.log.error({ code: driverCode(error), notLoggedSince: storageUnlogged }, 'cannot store: the store refuses writes (disk full, failing, locked) or cannot be reached; answering 503 storage_unavailable');
        storageLoggedAt = now;
        storageUnlogged = 0;
      }
      storageFailingSince ??= now;
      storageFailedRoutes.add(routeKey(request));
    } else if (error instanceof UnavailableError) {
      // Expected and named (the broker is down, the audit trail or an erasure cannot finish now): the caller is told
      // to retry; a warning with its code, not an error with a stack, so a broker outage does not fill the log with
      // stacks of every operator's retry.
      // Which part, in the hub's own words (an UnavailableError's message is written by the hub, never from input).
      request.log.warn({ problem: p.code, status: p.status, detail: p.detail }, 'request refused: a part it needs is unavailable now');
    } else if (p.status >= 500) {
      // The stack, without the message line (a message of an unexpected error could quote input).
      request.log.error({ errType: (error as Error)?.name, code: (error as { code?: unknown })?.code, stack: String((error as Error)?.stack ?? '').split('\n').slice(1, 8).join('\n') }, 'request failed');
    } else {
      request.log.info({ problem: p.code, status: p.status }, 'request refused');
    }
    return sendProblem(reply, p);
  });

  // A path that exists with other methods: 405 with Allow (RFC 9110 15.5.6), not 404. The routes' patterns, as
  // regular expressions, once all routes are registered.
  // A path a static route names is that route's resource, as the router resolves it for the route's own method: a
  // parametric route of another method does not answer it too (/patients/export is the export, whatever
  // DELETE /patients/:patientId would take).
  let patterns: { method: string; path: RegExp; literal: string | null }[] | null = null;
  const patternsOfRoutes = () =>
    (patterns ??= routes.map((r) => {
      const [method, pattern] = r.split(' ') as [string, string];
      const source = pattern.split('/').map((part) => (part.startsWith(':') ? '[^/]+' : part === '*' ? '.*' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/');
      return { method, path: new RegExp(`^${source}$`), literal: /[:*]/.test(pattern) ? null : pattern };
    }));
  const allowedMethods = (url: string): string[] => {
    const path = url.split('?')[0]!;
    const matching = patternsOfRoutes().filter((p) => p.path.test(path));
    const named = matching.filter((p) => p.literal === path);
    const methods = new Set((named.length > 0 ? named : matching).map((p) => p.method));
    if (methods.has('GET')) methods.add('HEAD');
    return [...methods].sort();
  };
  const methodNotAllowed = (reply: FastifyReply, allowed: readonly string[]) =>
    sendProblem(reply.header('allow', allowed.join(', ')), problem('method_not_allowed', `this resource answers ${allowed.join(', ')}`));
  const notFound = (request: FastifyRequest, reply: FastifyReply) => {
    const allowed = allowedMethods(request.url);
    if (allowed.length > 0 && !allowed.includes(request.method)) return methodNotAllowed(reply, allowed);
    return sendProblem(reply, problem('not_found', 'there is no resource at this path'));
  };
  app.setNotFoundHandler(notFound);
  // The router hands such a request to the parametric route (DELETE /patients/export reached the deprecated erasure,
  // which read "export" as a CPR number and answered 422 invalid_patient_id): answered as the path's other methods
  // are, 405 with Allow, before authentication, as a route that does not exist is.
  app.addHook('onRequest', async (request, reply) => {
    const route = request.routeOptions?.url;
    // No route: 404 or 405 before the body is read. Answered by the not-found handler, after fastify had parsed the
    // body, a body that was no JSON made `PUT /observations` or a mistyped path a 400 malformed_json (the caller
    // fixed the JSON, only to be told then that the path or method was wrong), and an unknown path's body was read.
    if (route === undefined) return notFound(request, reply);
    if (!/[:*]/.test(route)) return;
    // A path parameter left empty (/documents/, /patients//observations, /consultations/) names no resource: the path
    // is one the hub does not serve, 404 not_found before authentication, as any other. The router handed it to the
    // parametric route, whose check of the empty value answered 400 invalid_request (or, with a token, 403 or 422).
    const params = (request.params ?? {}) as Record<string, unknown>;
    if ([...route.matchAll(/:([A-Za-z0-9_]+)/g)].some(([, name]) => params[name!] === '')) return notFound(request, reply);
    const path = request.url.split('?')[0]!;
    if (!patternsOfRoutes().some((p) => p.literal === path)) return;
    return methodNotAllowed(reply, allowedMethods(path));
  });

  deps.beforeRoutes?.(app);

  // GET /health answers within healthTimeoutMs whatever the store does: with the events table locked (LOCK TABLE,
  // VACUUM FULL) the probe blocked 19-30 s, and a load balancer saw its own timeout instead of a 503. Probes that
  // arrive while a check is still pending share it, so a slow store holds one connection for them, not one each.
  const healthTimeoutMs = deps.healthTimeoutMs ?? 2_000;
  let pendingHealth: Promise<Record<string, unknown>> | null = null;
  const LATE = Symbol('late');
  app.get('/health', async (_request, reply) => {
    let health: Record<string, unknown> | typeof LATE;
    let timer: NodeJS.Timeout | undefined;
    if (pendingHealth === null) {
      const check = deps.health().finally(() => {
        pendingHealth = null;
      });
      check.catch(() => undefined); // a check that outlives its probes must not be an unhandled rejection
      pendingHealth = check;
    }
    try {
      health = await Promise.race([pendingHealth, new Promise<typeof LATE>((resolve) => (timer = setTimeout(() => resolve(LATE), healthTimeoutMs)))]);
    } catch (error) {
      // The driver's code where there is one (ECONNREFUSED: the database is down or elsewhere; a hung one is the
      // timeout below), never its message nor the address: /health answers anyone who can reach the hub.
      const cause = driverCode(error);
      const named = typeof cause === 'string' && /^[A-Z][A-Z0-9_]{1,39}$/.test(cause) ? cause : null;
      return sendProblem(reply, problem('storage_unavailable', named ? `the event store cannot be reached now (${named})` : 'the event store does not answer'));
    } finally {
      clearTimeout(timer);
    }
    if (health === LATE) return sendProblem(reply, problem('storage_unavailable', `the event store did not answer within ${healthTimeoutMs} ms`));
    // Reads are still answered, but a hub that cannot store uploads is not healthy: say why, for the operator.
    const failing = health['writesFailing'] as { code?: string; since?: string; file?: string } | undefined;
    if (failing) {
      const remedy =
        failing.code === FILES_MOVED_CODE
          ? "the store's files were removed or replaced while the hub ran: restore the data directory and restart"
          : failing.code === '25006'
            ? 'the database takes no writes now (a standby, or default_transaction_read_only on): point RTS_POSTGRES_URL at the primary, or make it writable again'
            : /^SQLITE_(BUSY|LOCKED)/.test(failing.code ?? '')
              ? `another process holds ${failing.file ?? "the store"}'s lock past the busy timeout (a sqlite3 shell in a transaction, a copy tool): end it`
              : 'free disk space, or check the disk';
      return sendProblem(reply, problem('storage_unavailable', `writes have failed since ${failing.since} (${failing.code}): ${remedy}`));
    }
    // 200 either way (uploads and queries need only the store), but a monitor that reads only `status` can tell a
    // hub whose broker, uplink or downlink is not working ('degraded') from one with nothing wrong ('ok').
    const degraded = health['broker'] === 'disconnected' || health['broker'] === 'login_refused' || health['uplink'] === 'not_consuming' || health['downlink'] === 'stalled';
    return { status: degraded ? 'degraded' : 'ok', ...health };
  });

  app.get('/openapi.json', async () => openApiDocument());

  app.get<{ Params: { code: string } }>('/problems/:code', async (request, reply) => {
    // An own property only: '__proto__' or 'toString' name no problem type.
    const known = Object.hasOwn(PROBLEM_TYPES, request.params.code) ? (PROBLEM_TYPES as Record<string, readonly [number, string]>)[request.params.code] : undefined;
    if (!known) return sendProblem(reply, problem('not_found', 'no such problem type'));
    return { type: problemTypeUri(request.params.code), status: known[0], title: known[1] };
  });

  app.post('/observations', async (request, reply) => {
    if (isXml(request)) return sendProblem(reply, problem('unsupported_media_type', 'send application/json'));
    const body = parseInput(ObservationBody, request.body, 'body');
    const now = deps.clock.now();
    const observation = createTeleObservation({ patientId: body.patientId, systolic: body.systolic, diastolic: body.diastolic, measuredAt: body.measuredAt ?? now }, now);
    const result = await deps.telemed.record(observation, { observationId: body.observationId, correlationId: request.id, measuredAtDefaulted: body.measuredAt === undefined });
    const document = `/documents/${result.uniqueId}`;
    // A repeat of a reading corrected since names the document that holds it now (TeleMedService.record).
    return reply
      .code(result.created ? 201 : 200)
      .header('location', document)
      .send({ uniqueId: result.uniqueId, observationId: body.observationId ?? null, measuredAt: result.measuredAt, document, ...(result.currentUniqueId ? { currentUniqueId: result.currentUniqueId } : {}) });
  });

  /**
   * The interval of a query, its refusals naming the fields the caller sent, as `where`.from / `where`.to (the
   * domain's say "to" alone). A `from` without a `to` ends now: a `from` in the future, or too far back, is said of
   * `from` (it was "to: must be after from", a field the caller never sent).
   */
  const intervalOf = (query: Readonly<{ from?: string | undefined; to?: string | undefined }>, now: DateTime, where: 'body' | 'query') => {
    const to = query.to ? DateTime.fromISO(query.to, { setZone: true }) : null;
    try {
      return query.from
        ? timeInterval(withClockSlack(DateTime.fromISO(query.from, { setZone: true }), to, now), to ?? endOfNow(now))
        : to
          ? timeInterval(to.minus({ days: 7 }), to)
          : lastDays(7, now);
    } catch (e) {
      if (!(e instanceof ValidationError)) throw e;
      // Outside the years 0000-9999 in UTC (the domain's refusal): a from alone in the year -1 UTC is not "in the future".
      const outside = e.details.some((d) => d.message === OUTSIDE_RFC3339_YEARS);
      if (query.from && !to) {
        const message = outside
          ? OUTSIDE_RFC3339_YEARS
          : e.code === 'interval_too_wide'
            ? `lies more than ${MAX_INTERVAL_DAYS} days back (without a to, the interval ends now, 5 minutes ahead included)`
            : 'lies in the future (without a to, the interval ends now, 5 minutes ahead included)';
        throw new ValidationError(e.code, `the interval's start ${message}`, [{ path: `${where}.from`, message }]);
      }
      // A to alone: its from is 7 days before it, so a from refused there is said of the to that was sent, in words true
      // of it (the to itself may lie in the year 0000).
      if (!query.from && outside && e.details.some((d) => d.path === 'from')) {
        const message = 'lies less than 7 days after 0000-01-01T00:00:00Z (without a from, the interval starts 7 days before the to, and must lie in the years 0000-9999 in UTC)';
        throw new ValidationError(e.code, `the interval's end ${message}`, [{ path: `${where}.to`, message }]);
      }
      throw new ValidationError(e.code, e.message, e.details.map((d) => ({ path: `${where}.${d.path}`, message: d.message })));
    }
  };

  /** One patient's readings in an interval: the answer of GET /patients/{id}/observations and POST /observations/search. */
  const observationsOf = async (raw: string, query: Readonly<{ from?: string | undefined; to?: string | undefined }>, where: 'body' | 'query') => {
    const now = deps.clock.now();
    // A number whose birth date lies in the future is refused as an upload refuses it (422 invalid_patient_id), not
    // answered "no readings" (404 unknown_patient) as if it could ever have some.
    const patientId = parseCprBornBy(raw, now.toMillis());
    const interval = intervalOf(query, now, where);
    const observations = await deps.telemed.getObservationsFor(patientId, interval);
    return {
      from: interval.from.toISO({ suppressMilliseconds: true }),
      to: interval.to.toISO({ suppressMilliseconds: true }),
      bounds: '[from,to)',
      count: observations.length,
      observations: observations.map((o) => ({ uniqueId: o.uniqueId, measuredAt: o.measuredAt, systolic: o.systolic, diastolic: o.diastolic })),
    };
  };

  app.get('/patients/:patientId/observations', async (request) => {
    const { patientId } = parseInput(PatientParams, request.params, 'path');
    return observationsOf(patientId, parseInput(ObservationQuery, request.query, 'query'), 'query');
  });

  // The same query with the CPR number in the body instead of the URL (the page and the CLI use it).
  app.post('/observations/search', async (request, reply) => {
    if (isXml(request)) return sendProblem(reply, problem('unsupported_media_type', 'send application/json'));
    const { patientId, ...query } = parseInput(ObservationSearchBody, request.body, 'body');
    reply.header('cache-control', 'no-store');
    return observationsOf(patientId, query, 'body');
  });

  app.get('/documents/:uniqueId', async (request, reply) => {
    const { uniqueId } = parseInput(DocumentParams, request.params, 'path');
    const { entry, content } = await deps.xds.retrieveDocument(uniqueId);
    reply.header('content-type', 'application/xml; charset=utf-8').header('x-document-status', entry.status).header('etag', `"${entry.hash}"`);
    // One Link header: a document in the middle of a correction chain has both a successor and a predecessor. A
    // successor only once it is registered, which is when the document turns Deprecated: an Approved one with a
    // replacedBy is mid-correction (or its correction's second append failed), still current, and the successor's
    // id would answer 404.
    const successor = entry.status === 'Deprecated' ? entry.replacedBy : null;
    const links = [successor && `</documents/${successor}>; rel="successor-version"`, entry.replaces && `</documents/${entry.replaces}>; rel="predecessor-version"`];
    const link = links.filter(Boolean).join(', ');
    if (link) reply.header('link', link);
    return reply.send(content);
  });

  // An HL7 correction may be as large as the parser takes (MAX_HL7_BYTES), more than the default body limit: up to
  // twice that reaches the parser, which names its own limit (413 document_too_large); larger is body_too_large.
  app.post('/documents/:uniqueId/corrections', { bodyLimit: Math.max(app.initialConfig.bodyLimit ?? 0, CORRECTION_BODY_LIMIT_BYTES) }, async (request, reply) => {
    const { uniqueId } = parseInput(DocumentParams, request.params, 'path');
    // 404 for a document that does not exist before the body or query is looked at, as the access check answers
    // someone else's document: checked after, a bad body told a stranger which uniqueIds exist (400 or 422 for an
    // unknown id, 404 for another patient's). The owner, past the access check, is told what is wrong with the body.
    await deps.xds.entry(uniqueId);
    const now = deps.clock.now();
    let result;
    try {
      result = await correctAsAsked(request, uniqueId, now);
    } catch (error) {
      return answerDeprecated(request, reply, uniqueId, error);
    }
    const document = `/documents/${result.uniqueId}`;
    // A repeat of a correction whose document was corrected again since: named as a repeated upload names it.
    return reply
      .code(result.created ? 201 : 200)
      .header('location', document)
      .send({ uniqueId: result.uniqueId, replaces: uniqueId, document, ...(result.currentUniqueId ? { currentUniqueId: result.currentUniqueId } : {}) });
  });

  /** The correction a request asks for: a whole HL7 document (XML), or new values (JSON). */
  const correctAsAsked = async (request: FastifyRequest, uniqueId: string, now: DateTime) => {
    if (isXml(request)) {
      // application/xml: a whole replacement HL7 document, as XDS's RPLC takes it; ?correctionId= makes a retry safe.
      const { correctionId } = parseInput(CorrectionQuery, request.query, 'query');
      const xml = String(request.body);
      checkXmlCharacters(xml);
      const corrected = parseHl7Observation(xml);
      return deps.telemed.correct(uniqueId, createTeleObservation(corrected, now), { correctionId, correlationId: request.id });
    } else {
      // The id may come in the body or, as for XML, in the query (the OpenAPI document declares it for both): a query
      // id was ignored, and a retry with other values got document_deprecated instead of correction_id_reused.
      const query = parseInput(CorrectionQuery, request.query, 'query');
      const body = parseInput(CorrectionBody, request.body, 'body');
      if (query.correctionId !== undefined && body.correctionId !== undefined && query.correctionId !== body.correctionId) {
        throw new ValidationError('invalid_request', 'correctionId is given twice, in the query and in the body, with different values', [{ path: 'query.correctionId', message: 'differs from body.correctionId' }]);
      }
      const patientId = await deps.telemed.patientOf(uniqueId);
      const corrected = createTeleObservation({ patientId, systolic: body.systolic, diastolic: body.diastolic, measuredAt: body.measuredAt }, now);
      return deps.telemed.correct(uniqueId, corrected, { correctionId: body.correctionId ?? query.correctionId, correlationId: request.id });
    }
  };

  /**
   * 409 document_deprecated names the document that holds the reading now: `currentUniqueId` (RFC 9457 extension)
   * and a Link rel="latest-version". A client whose correction lost to another's, or that corrected an id it kept from
   * before, was told only that the document had been replaced, and had to walk the successor-version links of GET
   * /documents to find the one to correct. Any other error goes on to the error handler.
   */
  const answerDeprecated = async (request: FastifyRequest, reply: FastifyReply, uniqueId: string, error: unknown): Promise<FastifyReply> => {
    if (!(error instanceof ConflictError && error.code === 'document_deprecated')) throw error;
    // Not found only while the correction that replaced it is between its two appends: the plain 409 then. So too for a
    // chain longer than MAX_CHAIN_HOPS: the entry reached is Deprecated itself, and named rel="latest-version" it sent
    // the client to correct a document that answers 409 again.
    const end = await deps.xds.chainEnd(uniqueId).catch(() => null);
    if (end === null || end.status === 'Deprecated' || end.uniqueId === uniqueId) throw error;
    const current = end.uniqueId;
    const answer: Problem & Readonly<{ currentUniqueId: string }> = { ...toProblem(error, problemInstance(request.url)), currentUniqueId: current };
    request.log.info({ problem: answer.code, status: answer.status }, 'request refused');
    return sendProblem(reply.header('link', `</documents/${current}>; rel="latest-version"`), answer);
  };

  const close = async (graceMs: number): Promise<void> => {
    closing = true;
    const closed = app.close();
    const deadline = performance.now() + graceMs;
    while (inFlight > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    app.server.closeAllConnections();
    await closed;
  };

  registerWebRoutes(app);

  return { app, close, routes: () => [...routes] };
};
