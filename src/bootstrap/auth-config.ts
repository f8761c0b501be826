import { isIPv4 } from 'node:net';
import { z } from 'zod';
import { holdsCprNumber } from '../domain/monitoring/cpr-like';
import { decimalSetting, wholeNumberSetting } from './setting-numbers';
import { jwksUrlCredentials } from '../adapters/auth/remote-key-set';

/**
 * Access control, rate limits and crypto-shredding settings (spread into ConfigSchema in config.ts).
 *
 *   RTS_AUTH                  on (default) | off. Off only for tests and trusted local experiments: every
 *                             request is then let through as an anonymous caller (still audited), with a warning.
 *   RTS_AUTH_JWT_SECRET       hex, >= 64 digits: the HS256 key of the embedded profile; default generated once
 *                             into $RTS_DATA_DIR/auth.secret (0600). `node dist/bootstrap/token.js` signs with it.
 *   RTS_AUTH_JWKS_URL         verify tokens against an identity provider's JWKS (RS256/ES256/EdDSA) instead.
 *   RTS_AUTH_JWKS_MAX_STALE_SECONDS  how long after its last answer the provider's key set is still used while the
 *                             provider cannot be reached (default an hour; 60-86400): clinicians keep working through a
 *                             short outage, and a key it dropped meanwhile is not taken for ever.
 *   RTS_AUTH_ISSUER / _AUDIENCE  required iss / aud claims (default telemed-rts).
 *   RTS_AUTH_CHANGE           on for one start: hub processes sharing a PostgreSQL or EventStoreDB store must verify
 *                             tokens alike, and one that does otherwise than the store recorded refuses to start;
 *                             on accepts this process's way as the deployment's new one.
 *   RTS_API_KEYS              JSON {"<systemId>": "<sha256 hex of the key>"}: connected systems' API keys
 *                             (X-Api-Key header), stored hashed.
 *   RTS_AUTH_DEV_LOGIN        on | off: POST /auth/dev-login hands out tokens for any role. Default on only in the
 *                             embedded profile (SQLite) listening on loopback without a JWKS; never on otherwise.
 *   RTS_RATE_LIMIT_PER_SECOND / RTS_RATE_LIMIT_BURST   token bucket per caller (subject, API key, else IP).
 *   RTS_AUDIT_ANCHOR_SECONDS   how often the hub logs the audit chains' heads ('audit anchor'; 0: never).
 *   RTS_PATIENT_KEY_CACHE_SIZE  data keys held in memory (LRU).
 */
const onOff = z.enum(['on', 'off'], { error: 'must be on or off' });

export const ApiKeys = z
  .string()
  .transform((value, ctx) => {
    try {
      return JSON.parse(value) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be JSON: {"<systemId>": "<sha256 hex>"}' });
      return z.NEVER;
    }
  })
  .pipe(z.record(z.string().regex(/^[a-z0-9][a-z0-9-]{1,31}$/, 'keys must be system ids'), z.string().regex(/^[0-9a-f]{64}$/, 'values must be sha256 hex digests')))
  // The caller's subject is system:<id>, recorded in clear in the audit trail (which erasure cannot reach), as a
  // token's systemId is: refused there (tokens.ts) and by POST /systems, so none is a CPR number. Said without the id.
  .refine((keys) => !Object.keys(keys).some(holdsCprNumber), "a system id must not be a CPR number: it is recorded in the audit trail, which erasure cannot reach");

/** An address as dns.lookup answers it: 127.0.0.0/8 (also mapped into IPv6) or ::1. */
export const isLoopbackAddress = (address: string): boolean => {
  const v4 = address.toLowerCase().startsWith('::ffff:') ? address.slice(7) : address;
  return (isIPv4(v4) && v4.startsWith('127.')) || address === '::1';
};
/**
 * RTS_HTTP_HOST as loopback: localhost, ::1, or an IPv4 address of 127.0.0.0/8 written as one (isIPv4: four decimal
 * parts of 0-255, no leading zero). 127.0.0.300 or 127.0.0.08 matched /^127\.\d+\.\d+\.\d+$/ and are no address:
 * listen looked them up as host names, which a hosts entry or a search domain's wildcard answers with any address.
 * What localhost resolves to is checked at start (loopback-listen.ts).
 */
export const isLoopbackListenHost = (host: string): boolean => host === 'localhost' || isLoopbackAddress(host);
/** The same, as URL.hostname writes an IPv6 address: in brackets. */
const LOOPBACK_URL_HOST = /^(127\.\d+\.\d+\.\d+|\[::1\]|localhost)$/;

export const authSettings = {
  RTS_AUTH: onOff.default('on'),
  // Two digits per byte, as auth.secret: an odd count's last digit was dropped unseen (Buffer.from(hex)).
  RTS_AUTH_JWT_SECRET: z.string().regex(/^(?:[0-9a-fA-F]{2}){32,}$/, 'must be at least 64 hex digits, two per byte (an even number of them); builds before 2026-12-06 took an odd count and used it without its last digit: drop that digit to keep the same secret').optional(),
  // https, or http to this machine only: the JWKS decides whose tokens the hub takes, and over plain http anyone on
  // the path could answer it with keys of their own.
  RTS_AUTH_JWKS_URL: z
    .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
    .refine((url) => new URL(url).protocol === 'https:' || LOOPBACK_URL_HOST.test(new URL(url).hostname), 'must be an https URL (http only to 127.0.0.1, ::1 or localhost): the hub trusts whatever keys it answers')
    // The user name goes as HTTP Basic's user-id, which RFC 7617 forbids a colon in: the provider splits at the
    // first one, and would be sent another user and password than those written.
    .refine(
      (url) => !(jwksUrlCredentials(new URL(url))?.user.includes(':') ?? false),
      "the user name written into it holds ':' (%3A), which HTTP Basic cannot carry (RFC 7617: the identity provider would read the user name up to it, and the rest as part of the password): use a user name without ':'",
    )
    .optional(),
  // At least the minute the key set is used anyway; at most a day: a key the provider dropped during an outage is
  // taken that long, so not indefinitely.
  RTS_AUTH_JWKS_MAX_STALE_SECONDS: wholeNumberSetting(60, 86_400).default(3600),
  RTS_AUTH_ISSUER: z.string().min(1).max(300).default('telemed-rts'),
  RTS_AUTH_AUDIENCE: z.string().min(1).max(300).default('telemed-rts'),
  RTS_API_KEYS: ApiKeys.optional(),
  RTS_AUTH_DEV_LOGIN: onOff.optional(),
  RTS_AUTH_CHANGE: onOff.default('off'),
  RTS_RATE_LIMIT_PER_SECOND: decimalSetting(0.1, 100_000).default(50),
  RTS_RATE_LIMIT_BURST: wholeNumberSetting(1, 1_000_000).default(200),
  RTS_AUDIT_ANCHOR_SECONDS: wholeNumberSetting(0, 86_400).default(3600),
  RTS_PATIENT_KEY_CACHE_SIZE: wholeNumberSetting(1, 10_000_000).default(10_000),
};

/**
 * RTS_AUTH=off only where nobody else reaches the hub: it lets every caller read, change, export and erase every
 * patient's data, and read the audit trail. On 0.0.0.0 or another address it started with one warning, so a test's
 * or an experiment's environment file reused behind a proxy opened the hub to the network.
 */
export const requireLoopbackWithoutAuth = (value: { RTS_AUTH: 'on' | 'off'; RTS_HTTP_HOST: string }, ctx: z.RefinementCtx): void => {
  if (value.RTS_AUTH === 'off' && !isLoopbackListenHost(value.RTS_HTTP_HOST)) {
    ctx.addIssue({
      code: 'custom',
      path: ['RTS_AUTH'],
      message: 'off only with a loopback RTS_HTTP_HOST (127.0.0.1, ::1, localhost): off lets every caller who reaches the hub read and erase every patient\'s data. Turn it on (tokens: README "Access control"), or listen on loopback',
    });
  }
};

/**
 * Whether POST /auth/dev-login is served: explicit setting, else only for the embedded profile on loopback with
 * its own secret. A secret given as RTS_AUTH_JWT_SECRET is a deployment's: a hub started by mistake on SQLite (a
 * misspelt RTS_EVENT_STORE) with it handed anyone on the machine tokens the deployment's hubs accepted.
 */
export const devLoginEnabled = (config: {
  RTS_AUTH: 'on' | 'off';
  RTS_AUTH_DEV_LOGIN?: 'on' | 'off' | undefined;
  RTS_HTTP_HOST: string;
  RTS_EVENT_STORE: string;
  RTS_AUTH_JWKS_URL?: string | undefined;
  RTS_AUTH_JWT_SECRET?: string | undefined;
}): boolean => {
  if (config.RTS_AUTH === 'off') return false;
  if (config.RTS_AUTH_DEV_LOGIN !== undefined) return config.RTS_AUTH_DEV_LOGIN === 'on';
  return config.RTS_EVENT_STORE === 'sqlite' && config.RTS_AUTH_JWKS_URL === undefined && config.RTS_AUTH_JWT_SECRET === undefined && isLoopbackListenHost(config.RTS_HTTP_HOST);
};
