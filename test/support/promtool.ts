import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

/**
 * Prometheus's promtool (Debian's prometheus package: apt-get install -y prometheus), which checks an exposition the
 * way the operator's Prometheus reads it: format errors (exit 1) and lint problems (exit 3), both on stderr.
 */
export const PROMTOOL_PATH = process.env.RTS_PROMTOOL_PATH ?? '/usr/bin/promtool';

/**
 * Whether a missing promtool fails the suite instead of skipping it: under CI (`.ci/run` installs prometheus and
 * exports RTS_REQUIRE_PROMTOOL=1; CI=true counts too), so a broken install can never pass as a skip.
 */
export const promtoolRequired = (env: NodeJS.ProcessEnv = process.env): boolean =>
  env.RTS_REQUIRE_PROMTOOL === '1' || env.CI === 'true' || env.CI === '1';

/** Why promtool cannot run here, or null when it can; where it is required (promtoolRequired), a missing one throws. */
export const promtoolUnavailable = (path: string = PROMTOOL_PATH, env: NodeJS.ProcessEnv = process.env): string | null => {
  try {
    accessSync(path, constants.X_OK);
    return null;
  } catch {
    const reason = `no promtool at ${path} (apt-get install -y prometheus, or set RTS_PROMTOOL_PATH)`;
    if (promtoolRequired(env)) throw new Error(`the promtool tests must run here (CI / RTS_REQUIRE_PROMTOOL=1), but there is ${reason}`);
    return reason;
  }
};

/** `promtool check metrics` on `exposition`: its exit code and what it said (stdout and stderr, trimmed). */
export const promtoolCheckMetrics = (exposition: string, path: string = PROMTOOL_PATH): Promise<{ code: number | null; output: string }> =>
  new Promise((ok, fail) => {
    const child = spawn(path, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => out.push(b));
    child.once('error', fail);
    child.once('close', (code) => ok({ code, output: Buffer.concat(out).toString('utf8').trim() }));
    child.stdin.end(exposition);
  });
