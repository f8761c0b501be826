import type { Logger } from 'pino';
import type { JwksFetchOutcome } from '../adapters/auth/tokens';
import type { MetricsRegistry } from '../adapters/metrics/registry';

/**
 * While the identity provider stays unreachable, how often the warning is repeated (a failed fetch is retried every
 * 5 s), on the monotonic clock (the outcome's monotonicAt): on the wall clock, an NTP step back at each fetch made the
 * warnings rarer (one in three minutes, or none), one forward brought the next at once.
 */
export const JWKS_WARNING_INTERVAL_MS = 60_000;

/**
 * The identity provider's key set fetches (RTS_AUTH_JWKS_URL) as log lines and metrics: a warning when the provider
 * cannot be reached and tokens are verified with the last key set it answered (repeated once a minute while it
 * lasts, with how much longer that set is used), an error once that set is no longer used and every token is refused,
 * a line when the provider answers again, and a warning for an answer with no keys (every token refused). Lines carry
 * the failure's reason (a fixed word, an HTTP status, a network error code) and ages: never the URL (it may carry
 * credentials) nor anything of a token.
 */
export const reportJwksFetches = (logger: Logger, metrics?: MetricsRegistry): ((outcome: JwksFetchOutcome) => void) => {
  const failures = metrics?.counter('rts_auth_jwks_fetch_failures_total', "Fetches of the identity provider's key set (RTS_AUTH_JWKS_URL) that failed: no answer, a timeout, an HTTP status other than 200, or no key set in the body");
  const stale = metrics?.gauge('rts_auth_jwks_stale', "Whether tokens are verified with a key set the identity provider could not refresh (1: it cannot be reached; see RTS_AUTH_JWKS_MAX_STALE_SECONDS), or with a current one (0)");
  stale?.set({}, 0);
  let warnedAt: number | null = null;
  let refusing = false;
  return (outcome) => {
    if (outcome.ok) {
      stale?.set({}, 0);
      if (outcome.afterFailures) logger.info('identity provider answered again: tokens are verified with its current key set');
      if (outcome.keys === 0) logger.warn('identity provider answered a key set without keys: every bearer token is refused until it publishes one');
      warnedAt = null;
      refusing = false;
      return;
    }
    failures?.inc();
    const seconds = (ms: number) => Math.round(ms / 1000);
    const fields = { reason: outcome.reason, keySetAgeSeconds: outcome.keySetAgeMs === null ? null : seconds(outcome.keySetAgeMs), usableForSeconds: seconds(outcome.usableForMs) };
    if (outcome.usableForMs > 0) {
      stale?.set({}, 1);
      if (warnedAt === null || outcome.monotonicAt - warnedAt >= JWKS_WARNING_INTERVAL_MS) {
        warnedAt = outcome.monotonicAt;
        logger.warn(fields, 'identity provider unreachable: verifying tokens with its last key set (RTS_AUTH_JWKS_MAX_STALE_SECONDS)');
      }
    } else {
      // No key set in use: the gauge says stale no longer; the failure counter and this line say why tokens fail.
      stale?.set({}, 0);
      if (!refusing) logger.error(fields, 'identity provider unreachable and no usable key set: every bearer token is refused');
      refusing = true;
    }
  };
};
