import pino from 'pino';
import { MetricsRegistry } from '../../src/adapters/metrics/registry';
import { JWKS_WARNING_INTERVAL_MS, reportJwksFetches } from '../../src/bootstrap/jwks-reporting';

// The identity provider's key set fetches as the hub's log lines and metrics (RTS_AUTH_JWKS_URL).
describe('reportJwksFetches', () => {
  const setUp = () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const metrics = new MetricsRegistry();
    return { lines, metrics, report: reportJwksFetches(logger, metrics) };
  };
  const failed = (at: number, usableForMs: number) => ({ ok: false as const, at, monotonicAt: at, reason: 'HTTP 503', keySetAgeMs: 3_600_000 - usableForMs, usableForMs });

  it('warns while tokens are verified with a stale key set (once a minute), errs once none is usable, and says when the provider answers again', () => {
    const { lines, metrics, report } = setUp();
    expect(metrics.render()).toContain('rts_auth_jwks_stale 0\n');
    report(failed(0, 3_000_000));
    report(failed(5_000, 2_995_000)); // the retry 5 s on: no second line
    expect(lines).toEqual([expect.objectContaining({ level: 40, reason: 'HTTP 503', keySetAgeSeconds: 600, usableForSeconds: 3000 })]);
    expect(metrics.render()).toContain('rts_auth_jwks_stale 1\n');
    report(failed(JWKS_WARNING_INTERVAL_MS, 2_940_000));
    expect(lines).toHaveLength(2);
    report(failed(3_000_000, 0));
    report(failed(3_005_000, 0));
    expect(lines.slice(2)).toEqual([expect.objectContaining({ level: 50, msg: expect.stringMatching(/every bearer token is refused/) })]);
    expect(metrics.render()).toContain('rts_auth_jwks_fetch_failures_total 5\n');
    expect(metrics.render()).toContain('rts_auth_jwks_stale 0\n');
    report({ ok: true, at: 3_010_000, monotonicAt: 3_010_000, keys: 2, afterFailures: true });
    expect(lines.at(-1)).toMatchObject({ level: 30, msg: expect.stringMatching(/answered again/) });
    expect(JSON.stringify(lines)).not.toMatch(/http:|eyJ/); // no URL, no token
  });

  it('repeats the warning once a minute on the steady clock, however the wall clock is set meanwhile', () => {
    const { lines, report } = setUp();
    // A process just started (its steady clock near 0); a failed fetch every 5 s for three minutes, and at each an NTP
    // step sets the wall clock 4 s back (it moves 1 s per fetch): by it, a minute had not passed in all that time.
    let wall = Date.parse('2026-12-06T12:00:00Z');
    for (let steady = 0; steady < 180_000; steady += 5_000, wall += 1_000) {
      report({ ok: false, at: wall, monotonicAt: steady, reason: 'HTTP 503', keySetAgeMs: 600_000 + steady, usableForMs: 3_000_000 - steady });
    }
    expect(lines.filter((line) => line.level === 40)).toHaveLength(3); // at 0, 60 and 120 s
    // A wall clock set forward by an hour does not bring the next one early.
    const { lines: more, report: reportMore } = setUp();
    reportMore({ ok: false, at: wall, monotonicAt: 0, reason: 'HTTP 503', keySetAgeMs: 600_000, usableForMs: 3_000_000 });
    reportMore({ ok: false, at: wall + 3_600_000, monotonicAt: 5_000, reason: 'HTTP 503', keySetAgeMs: 605_000, usableForMs: 2_995_000 });
    expect(more).toHaveLength(1);
  });

  it('warns of an answer without keys: every token is refused', () => {
    const { lines, report } = setUp();
    report({ ok: true, at: 0, monotonicAt: 0, keys: 0, afterFailures: false });
    expect(lines).toEqual([expect.objectContaining({ level: 40, msg: expect.stringMatching(/without keys/) })]);
  });
});
