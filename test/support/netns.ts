// Network namespaces for tests that need multicast: everything multicast stays on a namespace's own loopback.
//
//   const check = netnsSupport();          // { ok: false, reason } when not root or `ip netns` is unusable
//   createNetns('rts-x'); ... deleteNetns('rts-x');
//   spawnInNetns('rts-x', 'node', [...])   // a process inside it (`ip netns exec` execs, so the pid is the child's)
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface NetnsSupport {
  ok: boolean;
  reason?: string;
}

let cached: NetnsSupport | undefined;

export function netnsSupport(): NetnsSupport {
  if (cached) return cached;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return (cached = { ok: false, reason: 'not root' });
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'pipe', timeout: 5000 });
  } catch (error) {
    return (cached = { ok: false, reason: `ip netns unavailable: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}` });
  }
  return (cached = { ok: true });
}

export function netnsExists(name: string): boolean {
  const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 5000 });
  return out.split('\n').some((line) => line.split(/\s+/)[0] === name);
}

/** Creates `name` with its loopback up, multicast on, and the multicast route on lo (nothing else). */
export function createNetns(name: string): void {
  if (!netnsExists(name)) execFileSync('ip', ['netns', 'add', name], { stdio: 'pipe', timeout: 5000 });
  const exec = (...args: string[]) => execFileSync('ip', ['netns', 'exec', name, ...args], { stdio: 'pipe', timeout: 5000 });
  exec('ip', 'link', 'set', 'lo', 'up');
  exec('ip', 'link', 'set', 'lo', 'multicast', 'on');
  exec('ip', 'route', 'replace', '224.0.0.0/4', 'dev', 'lo');
}

/** Kills what still runs inside `name` (only that namespace's processes) and deletes it. */
export function deleteNetns(name: string): void {
  if (!netnsExists(name)) return;
  try {
    const pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8', timeout: 5000 })
      .split('\n')
      .map((p) => Number(p.trim()))
      .filter((p) => Number.isInteger(p) && p > 1);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  } catch {
    // best effort
  }
  execFileSync('ip', ['netns', 'del', name], { stdio: 'pipe', timeout: 5000 });
}

export function spawnInNetns(name: string, command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  return spawn('ip', ['netns', 'exec', name, command, ...args], options);
}
