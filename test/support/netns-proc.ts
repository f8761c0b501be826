// Node processes inside a test's network namespace that print JSON lines (the hub with its JSON log,
// scripts/cluster/ha-city.ts): start them with `inNs`, wait on their lines with `Proc.next`, drive ha-city with
// `Proc.ask`. Used by the HA tests, whose brokers, multicast and ports exist only inside the namespace.
import type { ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { settled, spawnChild } from './children';

const repoRoot = resolve(__dirname, '..', '..');

export type Line = { [k: string]: unknown };

/** A child inside the namespace that prints JSON lines; waits on them. */
export class Proc {
  readonly lines: Line[] = [];
  private waiters: Array<{ test: (l: Line) => boolean; resolve: (l: Line) => void }> = [];
  readonly exited: Promise<void>;
  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    this.exited = settled(child).then(() => undefined);
    createInterface({ input: child.stdout! }).on('line', (text) => {
      let line: Line;
      try {
        line = JSON.parse(text) as Line;
      } catch {
        return;
      }
      this.lines.push(line);
      for (const w of [...this.waiters]) {
        if (w.test(line)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    });
    child.stderr!.on('data', (d: Buffer) => {
      const text = d.toString();
      if (process.env.HA_HUB_VERBOSE || /Error|error/.test(text)) process.stderr.write(`[${name}] ${text}`);
    });
  }
  next(test: (l: Line) => boolean, timeoutMs: number, what: string, since = 0): Promise<Line> {
    const seen = this.lines.slice(since).find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolveLine, reject) => {
      // The child's recent broker lines go into the error: a CI log then says where it was instead.
      const timer = setTimeout(() => reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms (${this.state()}); its last broker lines and warnings:\n${this.recentBrokerLines()}`)), timeoutMs);
      this.waiters.push({
        test,
        resolve: (l) => {
          clearTimeout(timer);
          resolveLine(l);
        },
      });
    });
  }
  /** Whether the child still runs: a wait that timed out because the process had ended says so. */
  state(): string {
    const { exitCode, signalCode } = this.child;
    return exitCode === null && signalCode === null ? 'still running' : `exited: code ${exitCode}, signal ${signalCode}`;
  }
  /** Its broker lines (amqp.*, broker.*) and its warnings and errors (pino level 40 and up), the last `n`. */
  recentBrokerLines(n = 25): string {
    const wanted = this.lines.filter((l) => (typeof l.event === 'string' && (l.event.startsWith('amqp.') || l.event.startsWith('broker.'))) || (typeof l.level === 'number' && l.level >= 40));
    return wanted
      .slice(-n)
      .map((l) => JSON.stringify({ time: l.time, level: l.level, event: l.event, role: l.role, kind: l.kind, endpoint: l.endpoint, from: l.from, to: l.to, reconnecting: l.reconnecting, error: l.error, reason: l.reason, msg: l.event ? undefined : l.msg }))
      .join('\n');
  }
  send(cmd: string): void {
    this.child.stdin!.write(`${cmd}\n`);
  }
  async ask(cmd: string, ev: string, timeoutMs = 15000): Promise<Line> {
    const since = this.lines.length;
    this.send(cmd);
    return this.next((l) => l.ev === ev || l.ev === 'error', timeoutMs, `${ev} after ${cmd.split(' ')[0]}`, since);
  }
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}

export const inNs = (netns: string, args: string[], env: Record<string, string> = {}) =>
  spawnChild('ip', ['netns', 'exec', netns, process.execPath, '-r', join(repoRoot, 'test', 'support', 'ts-register.js'), ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
