import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/**
 * Start a process for a test (a hub, a broker, a client) that dies with the test process and never keeps it from
 * exiting.
 *
 * On this machine jest runs the suites in its own process (two cores: one worker, so in band). A hub that a failed
 * setup left running (started alongside a browser that did not launch) held jest open after the last test: CI
 * would have waited for its time limit instead of failing at once. A `process.on('exit')` hook cannot help inside
 * a test: jest hands each test file a copy of `process` whose events are its own, so the hook never runs.
 *
 * So the kernel does it: the command runs under `setpriv --pdeathsig KILL` (util-linux), which asks for SIGKILL
 * when its parent exits, and keeps it across the exec of the command (and of `ip netns exec`'s command, which
 * execs too: the pid stays the same). And the child and its pipes are unref'd: every test awaits what it needs
 * of them itself.
 */
export const spawnChild = (command: string, args: readonly string[], options: SpawnOptions): ChildProcess => {
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', command, ...args], options);
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as { unref?: () => void } | null)?.unref?.();
  return child;
};

/**
 * The child's exit code and signal once it has exited AND its output has been read to the end. Node emits 'exit'
 * when the process ends, possibly before the last 'data' of its stdout and stderr: a test that read the output on
 * 'exit' could miss the last lines (a stop's "telemed-rts stopped"). 'close' comes after both; a grandchild that
 * kept the pipes open would hold it back, so 'exit' plus `graceMs` settles it then.
 */
export const settled = (child: ChildProcess, graceMs = 2000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> =>
  new Promise((resolve) => {
    let grace: NodeJS.Timeout | undefined;
    child.once('close', (code, signal) => {
      clearTimeout(grace);
      resolve({ code, signal });
    });
    child.once('exit', (code, signal) => (grace = setTimeout(() => resolve({ code, signal }), graceMs)));
  });

export type ChildRun = Readonly<{ code: number | null; out: string; err: string }>;

/**
 * spawnChild a command that ends by itself (a CLI, a client script) and collect its exit code and output.
 * `interruptWhen`: for one that runs until Ctrl-C, one SIGINT once its stdout satisfies it (or after
 * `interruptAfterMs`, default 90 s, leaving the caller's assertions to say what was missing).
 */
export const runChild = async (
  command: string,
  args: readonly string[],
  options: Omit<SpawnOptions, 'stdio'> & { interruptWhen?: (out: string) => boolean; interruptAfterMs?: number },
): Promise<ChildRun> => {
  const { interruptWhen, interruptAfterMs, ...spawnOptions } = options;
  const child = spawnChild(command, args, { ...spawnOptions, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let interrupted = false;
  // Once: a second Ctrl-C would end it at once instead of letting it close.
  const interrupt = () => !interrupted && (interrupted = true) && child.kill('SIGINT');
  const deadline = interruptWhen ? setTimeout(interrupt, interruptAfterMs ?? 90_000) : undefined;
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    if (interruptWhen?.(out)) interrupt();
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const { code } = await settled(child);
  clearTimeout(deadline);
  return { code, out, err };
};

/**
 * Whether process `pid` holds the socket listening on TCP `port` (IPv4 or IPv6), from /proc (Linux: the machines
 * these tests run on): the listening sockets' inodes in the process's own network namespace (/proc/<pid>/net/tcp{,6}),
 * against its open sockets. A port that freePort found free may be taken by another test's server before the child
 * binds it: the child then exits (EADDRINUSE) while the stranger answers, and only this tells the two apart.
 */
export const listensOn = (pid: number, port: number): boolean => {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const table of [`/proc/${pid}/net/tcp`, `/proc/${pid}/net/tcp6`]) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is ADDR:PORT in hex; st 0A is LISTEN; the inode is the tenth field.
      if (f.length > 9 && f[1]!.endsWith(`:${hexPort}`) && f[3] === '0A') inodes.add(f[9]!);
    }
  }
  if (inodes.size === 0) return false;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  return fds.some((fd) => {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      return m !== null && inodes.has(m[1]!);
    } catch {
      return false;
    }
  });
};
