import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { APP_CSS } from './web/app-css';
import { APP_JS } from './web/app-js';
import { INDEX_HTML } from './web/index-html';

/**
 * The patient's review page (HomeClient on the web): three static assets, embedded as TypeScript strings so
 * `tsc` carries them into dist/ (no copy step, no path that differs between src/ and dist/).
 *
 *   GET /            -> 302 app/   (relative, as every URL of the page: the hub may be served under a path prefix)
 *   GET /app         -> 301 app/
 *   GET /app/        -> index.html   (Cache-Control: no-cache, ETag; it names the asset versions)
 *   GET /app/app.js  -> the script   (?v=<hash of this build>: immutable for a year; otherwise no-cache)
 *   GET /app/app.css -> the styles   (likewise)
 *   POST /app/       -> 303 ./       (the page's forms without its script: see below)
 *
 * Every answer carries a strict CSP (scripts and styles from this origin only, no inline code, no framing),
 * nosniff and no-referrer. The page talks only to this origin's API (connect-src 'self').
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

type Asset = Readonly<{ body: Buffer; type: string; etag: string; version: string }>;

const asset = (text: string, type: string): Asset => {
  const body = Buffer.from(text, 'utf8');
  const version = createHash('sha256').update(body).digest('base64url').slice(0, 16);
  return { body, type, etag: `"${version}"`, version };
};

const securityHeaders = (reply: FastifyReply): FastifyReply =>
  reply
    .header('content-security-policy', CONTENT_SECURITY_POLICY)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY')
    .header('cross-origin-opener-policy', 'same-origin')
    .header('cross-origin-resource-policy', 'same-origin');

export const registerWebRoutes = (app: FastifyInstance): void => {
  const js = asset(APP_JS, 'text/javascript; charset=utf-8');
  const css = asset(APP_CSS, 'text/css; charset=utf-8');
  const html = asset(INDEX_HTML.replace('__JS_VERSION__', js.version).replace('__CSS_VERSION__', css.version), 'text/html; charset=utf-8');

  const send = (reply: FastifyReply, a: Asset, ifNoneMatch: string | undefined, cacheControl: string): FastifyReply => {
    securityHeaders(reply).header('cache-control', cacheControl).header('etag', a.etag);
    if (ifNoneMatch && ifNoneMatch.split(',').some((t) => t.trim().replace(/^W\//, '') === a.etag)) return reply.code(304).send();
    return reply.header('content-type', a.type).send(a.body);
  };
  // A versioned URL never changes content: cache it for good. An unversioned one revalidates every time.
  const cacheFor = (a: Asset, v: unknown): string => (v === a.version ? 'public, max-age=31536000, immutable' : 'no-cache');

  app.get('/', async (_request, reply) => securityHeaders(reply).header('cache-control', 'no-cache').redirect('app/', 302));
  app.get('/app', async (_request, reply) => securityHeaders(reply).header('cache-control', 'no-cache').redirect('app/', 301));
  app.get('/app/', async (request, reply) => send(reply, html, request.headers['if-none-match'], 'no-cache'));
  // The page's forms post to ./ (never GET: a CPR number stays out of the URL), which only its script stops. Without it
  // (it failed to load on a flaky connection, the browser runs none) a patient's "Show my readings" got the API's raw
  // JSON (405 method_not_allowed). Answered before the body is read (the CPR number is neither parsed nor kept): 303
  // to the page, which asks for its script anew or says it needs JavaScript, and whose reload posts nothing again.
  app.post('/app/', { onRequest: async (_request, reply) => securityHeaders(reply).header('cache-control', 'no-store').redirect('./', 303) }, async () => undefined);
  app.get<{ Querystring: { v?: string } }>('/app/app.js', async (request, reply) =>
    send(reply, js, request.headers['if-none-match'], cacheFor(js, request.query.v)),
  );
  app.get<{ Querystring: { v?: string } }>('/app/app.css', async (request, reply) =>
    send(reply, css, request.headers['if-none-match'], cacheFor(css, request.query.v)),
  );
};
