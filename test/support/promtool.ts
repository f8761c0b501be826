import { spawn } from 'node:child_process';
import { toolRequired, toolUnavailable, type RequiredTool } from './required-tool';

/**
 * Prometheus's promtool (Debian's prometheus package: apt-get install -y prometheus), which checks an exposition the
 * way the operator's Prometheus reads it: format errors (exit 1) and lint problems (exit 3), both on stderr.
 */
export const PROMTOOL_PATH = process.env.RTS_PROMTOOL_PATH ?? '/usr/bin/promtool';

const PROMTOOL: RequiredTool = { name: 'promtool', tests: 'the promtool tests', debianPackage: 'prometheus', pathVar: 'RTS_PROMTOOL_PATH', requireVar: 'RTS_REQUIRE_PROMTOOL' };

/** Whether a missing promtool fails the suite instead of skipping it (required-tool.ts). */
export const promtoolRequired = (env: NodeJS.ProcessEnv = process.env): boolean => toolRequired(PROMTOOL, env);

/** Why promtool cannot run here, or null when it can; where it is required (promtoolRequired), a missing one throws. */
export const promtoolUnavailable = (path: string = PROMTOOL_PATH, env: NodeJS.ProcessEnv = process.env): string | null => toolUnavailable(PROMTOOL, path, env);

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
