// A real ActiveMQ Classic broker for integration tests.
//
//   const broker = await startBroker();            // fresh temp data dir, free port
//   ... amqp://127.0.0.1:${broker.amqpPort} ...
//   await broker.stop();                           // graceful; data kept
//   const again = await broker.startAgain();       // restart on the same store and port (after stop or kill)
//   await again.destroy();                         // stop and delete the data dir (again owns it now)
//
// startBroker({ dataDir }) on a directory it did not make never deletes it: a test that restarts its own broker
// that way leaves /tmp/rts-activemq-* behind. startAgain() hands the directory on to the new broker.
//
// The broker config is the one scripts/activemq/broker.sh generates (AMQP on 127.0.0.1 only, KahaDB, no web
// console, no JMX, no multicast); the JVM is `exec`ed by `broker.sh run`, so the child pid is the JVM's.
import { execFile, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { create_container, type EventContext } from 'rhea';
import { listensOn, spawnChild } from './children';

const repoRoot = resolve(__dirname, '..', '..');
const scripts = join(repoRoot, 'scripts', 'activemq');

export interface StartBrokerOptions {
  /** Reuse this data dir (e.g. a stopped broker's, to test persistence); default: a fresh temp dir. */
  dataDir?: string;
  /** AMQP port on 127.0.0.1; default: a free one. Pass the old port when restarting on the same data dir. */
  port?: number;
  /** Give up waiting for readiness after this many ms (default 60000). */
  startTimeoutMs?: number;
  /** JVM max heap (default 256m for tests). */
  heap?: string;
  brokerName?: string;
  /**
   * Broker accounts (scripts/activemq/broker.sh, RTS_BROKER_USERS_FILE): the broker then takes only SASL PLAIN
   * logins of these users and applies the RTS access map. The readiness probe logs in as the first one.
   */
  users?: readonly BrokerUser[];
  /**
   * AMQP over TLS only (broker.sh RTS_BROKER_TLS_KEYSTORE): `url` is then amqps://; the probe trusts `caPem`. With a
   * `truststore` (clientCertificates), only clients with one of its certificates get in; the probe shows `probe`'s.
   */
  tls?: Readonly<{ keystore: string; password: string; caPem: string; truststore?: Readonly<{ file: string; password: string; probe: ClientCertificate }> }>;
  /** false: a broker without the statistics plugin (broker.sh RTS_BROKER_STATISTICS=off), as an operator's may be. */
  statistics?: boolean;
  /** false: a SASL layer is required even without accounts (broker.sh RTS_BROKER_NON_SASL=off), as in production. */
  nonSasl?: boolean;
  /** broker.sh RTS_BROKER_STORE_LIMIT and RTS_BROKER_JOURNAL_FILE_LENGTH: a small store, to fill (e.g. '8 mb', '1mb'). */
  storeLimit?: string;
  journalFileLength?: string;
  /** An ActiveMQ home of another version (provisionActiveMq('6.3.1')); default: the one provision.sh installs. */
  home?: string;
}

/** A broker account: a hub (may do anything), or a connected system whose systemId is its name. */
export type BrokerUser = Readonly<{ name: string; password: string; hub?: boolean }>;

export interface TestBroker {
  amqpPort: number;
  /** amqp://127.0.0.1:<port> */
  url: string;
  host: string;
  dataDir: string;
  pid: number;
  /** Graceful stop (SIGTERM: the broker's shutdown hook closes KahaDB), SIGKILL after 15 s. Data kept. */
  stop(): Promise<void>;
  /** SIGKILL: a crash. Data kept. */
  kill(): Promise<void>;
  /** stop(), then delete the data dir (only if it was created by startBroker, or handed on by startAgain). */
  destroy(): Promise<void>;
  /**
   * A broker again on this one's data dir and port (call stop() or kill() first), with this one's options unless
   * overridden. The data dir's ownership moves to it: its destroy() deletes a dir this one made, this one's no longer.
   */
  startAgain(options?: Omit<StartBrokerOptions, 'dataDir' | 'port'>): Promise<TestBroker>;
  /** The broker's console output so far (for failure messages). */
  log(): string;
}

/**
 * A self-signed TLS certificate for a test broker on 127.0.0.1, made with the JDK's keytool in `dir`: the PKCS12
 * keystore for broker.sh (RTS_BROKER_TLS_KEYSTORE) and the certificate as PEM, for clients to trust. It names
 * 127.0.0.1 twice: as an IP address entry, which Node checks, and as its CN, which Qpid Proton checks (it does not
 * read IP address entries).
 */
export function brokerCertificate(dir: string): Readonly<{ keystore: string; password: string; caPem: string; caFile: string }> {
  const keystore = join(dir, 'broker.p12');
  const caFile = join(dir, 'broker-ca.pem');
  const password = 'keystore-secret';
  const keytool = (args: string[]) => {
    const run = spawnSync('keytool', args, { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`keytool ${args[0]} failed: ${run.stderr || run.stdout}`);
  };
  keytool(['-genkeypair', '-alias', 'broker', '-keyalg', 'EC', '-groupname', 'secp256r1', '-dname', 'CN=127.0.0.1', '-ext', 'SAN=ip:127.0.0.1',
    '-validity', '2', '-storetype', 'PKCS12', '-keystore', keystore, '-storepass', password, '-keypass', password]);
  keytool(['-exportcert', '-rfc', '-alias', 'broker', '-keystore', keystore, '-storepass', password, '-file', caFile]);
  return { keystore, password, caPem: readFileSync(caFile, 'utf8'), caFile };
}

/** A client's certificate and key (PEM), self-signed by openssl, and the files they are in. */
export type ClientCertificate = Readonly<{ name: string; certPem: string; keyPem: string; certFile: string; keyFile: string }>;

/**
 * Client certificates for mutual TLS, made with openssl in `dir`, and a PKCS12 truststore holding them all for
 * broker.sh (RTS_BROKER_TLS_TRUSTSTORE): the broker then lets in exactly these clients.
 */
export function clientCertificates(dir: string, names: readonly string[]): Readonly<{ certificates: Record<string, ClientCertificate>; truststore: string; password: string }> {
  const password = 'truststore-secret';
  const truststore = join(dir, 'clients-trust.p12');
  const certificates: Record<string, ClientCertificate> = {};
  for (const name of names) {
    const certFile = join(dir, `${name}.crt.pem`);
    const keyFile = join(dir, `${name}.key.pem`);
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${name}`], { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`openssl req failed: ${made.stderr}`);
    const imported = spawnSync('keytool', ['-importcert', '-noprompt', '-alias', name, '-file', certFile, '-keystore', truststore, '-storetype', 'PKCS12', '-storepass', password], { encoding: 'utf8' });
    if (imported.status !== 0) throw new Error(`keytool -importcert failed: ${imported.stderr || imported.stdout}`);
    certificates[name] = { name, certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8'), certFile, keyFile };
  }
  return { certificates, truststore, password };
}

const provisioned = new Map<string, Promise<string>>();

/**
 * Provisions ActiveMQ (scripts/activemq/provision.sh) once per process and version; resolves to its home. Without a
 * version: provision.sh's default, or RTS_ACTIVEMQ_VERSION's.
 */
export function provisionActiveMq(version?: string): Promise<string> {
  const key = version ?? '';
  let home = provisioned.get(key);
  if (home === undefined) {
    const env = version === undefined ? process.env : { ...process.env, RTS_ACTIVEMQ_VERSION: version };
    home = new Promise<string>((resolveHome, reject) => {
      execFile(join(scripts, 'provision.sh'), { cwd: repoRoot, env, timeout: 10 * 60 * 1000 }, (error, stdout, stderr) => {
        if (error) reject(new Error(`provision.sh failed: ${error.message}\n${stderr}`));
        else resolveHome(stdout.trim().split('\n').pop()!);
      });
    });
    provisioned.set(key, home);
  }
  return home;
}

export async function startBroker(options: StartBrokerOptions = {}): Promise<TestBroker> {
  return start(options, options.dataDir === undefined);
}

async function start(options: StartBrokerOptions, createdDir: boolean): Promise<TestBroker> {
  const home = options.home ?? (await provisionActiveMq());
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'rts-activemq-'));
  const attempts = options.port === undefined ? 3 : 1;
  let lastError: unknown;
  for (let i = 0; i < attempts; i++) {
    const port = options.port ?? (await freePort());
    try {
      return await launch({ ...options, home, givenHome: options.home, dataDir, port, createdDir });
    } catch (error) {
      lastError = error;
      if (!String(error).includes('Address already in use')) break;
    }
  }
  if (createdDir) rmSync(dataDir, { recursive: true, force: true });
  throw lastError;
}

async function launch(o: StartBrokerOptions & { home: string; givenHome: string | undefined; dataDir: string; port: number; createdDir: boolean }): Promise<TestBroker> {
  const host = '127.0.0.1';
  if (await portOpen(host, o.port, 200)) throw new Error(`port ${o.port} is already in use`);
  const logFile = join(o.dataDir, `broker-${Date.now()}.out`);
  const usersFile = join(o.dataDir, 'users.txt');
  if (o.users) writeFileSync(usersFile, o.users.map((u) => `${u.name} ${u.password}${u.hub ? ' hub' : ''}\n`).join(''), { mode: 0o600 });
  const out = openSync(logFile, 'a');
  const child = spawnChild(join(scripts, 'broker.sh'), ['run'], {
    cwd: repoRoot,
    env: {
      ...process.env,
      RTS_ACTIVEMQ_HOME: o.home,
      RTS_BROKER_DATA: o.dataDir,
      RTS_BROKER_PORT: String(o.port),
      RTS_BROKER_HEAP: o.heap ?? '256m',
      RTS_BROKER_NAME: o.brokerName ?? 'rts-test',
      ...(o.users ? { RTS_BROKER_USERS_FILE: usersFile } : {}),
      RTS_BROKER_STATISTICS: o.statistics === false ? 'off' : 'on',
      RTS_BROKER_NON_SASL: o.nonSasl === false ? 'off' : 'on',
      ...(o.storeLimit ? { RTS_BROKER_STORE_LIMIT: o.storeLimit } : {}),
      ...(o.journalFileLength ? { RTS_BROKER_JOURNAL_FILE_LENGTH: o.journalFileLength } : {}),
      ...(o.tls ? { RTS_BROKER_TLS_KEYSTORE: o.tls.keystore, RTS_BROKER_TLS_KEYSTORE_PASSWORD: o.tls.password } : {}),
      ...(o.tls?.truststore ? { RTS_BROKER_TLS_TRUSTSTORE: o.tls.truststore.file, RTS_BROKER_TLS_TRUSTSTORE_PASSWORD: o.tls.truststore.password } : {}),
    },
    stdio: ['ignore', out, out],
  });
  closeSync(out);
  const exited = new Promise<number | null>((resolveExit) => {
    child.once('exit', (code, signal) => {
      resolveExit(code ?? (signal ? -1 : null));
    });
  });
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  const log = () => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };

  const signal = async (sig: NodeJS.Signals, graceMs: number): Promise<void> => {
    if (hasExited) return;
    child.kill(sig);
    let handle: NodeJS.Timeout | undefined;
    const timer = new Promise<'timeout'>((r) => (handle = setTimeout(() => r('timeout'), graceMs)));
    const first = await Promise.race([exited, timer]);
    clearTimeout(handle);
    if (first === 'timeout') {
      child.kill('SIGKILL');
      await exited;
    }
  };

  let ownsDir = o.createdDir;
  const broker: TestBroker = {
    amqpPort: o.port,
    url: `${o.tls ? 'amqps' : 'amqp'}://${host}:${o.port}`,
    host,
    dataDir: o.dataDir,
    pid: child.pid ?? -1,
    stop: () => signal('SIGTERM', 15000),
    kill: () => signal('SIGKILL', 5000),
    destroy: async () => {
      await signal('SIGTERM', 15000);
      if (ownsDir) rmSync(o.dataDir, { recursive: true, force: true });
    },
    startAgain: async (overrides = {}) => {
      // The same home when this one was given one; else provision.sh's again.
      const { home: _home, givenHome, createdDir: _created, ...previous } = o;
      const again = await start({ ...previous, home: givenHome, ...overrides, dataDir: o.dataDir, port: o.port }, ownsDir);
      ownsDir = false;
      return again;
    },
    log,
  };

  const deadline = Date.now() + (o.startTimeoutMs ?? 60000);
  try {
    // Its own socket (listensOn), not any: a port freePort found free can be another test's broker by now, and the
    // probe below would then pass against that one.
    while (!listensOn(child.pid ?? -1, o.port)) {
      if (hasExited) throw new Error(`ActiveMQ exited during startup:\n${tail(log())}`);
      if (Date.now() > deadline) throw new Error(`ActiveMQ not listening on ${host}:${o.port} in time:\n${tail(log())}`);
      await sleep(50);
    }
    const tlsProbe = o.tls ? { ca: o.tls.caPem, ...(o.tls.truststore ? { cert: o.tls.truststore.probe.certPem, key: o.tls.truststore.probe.keyPem } : {}) } : undefined;
    // A broker restarted on the same port can take the socket and reset it while it is still starting (a CI run saw
    // ECONNRESET from the one probe, and the test failed at its setup): a dropped handshake is tried again until
    // the deadline; a refusal (connection_error) or a broker that exited is not.
    for (;;) {
      try {
        await amqpHandshake(host, o.port, Math.max(1000, deadline - Date.now()), o.users?.[0], tlsProbe, o.nonSasl === false);
        break;
      } catch (error) {
        if (hasExited || Date.now() > deadline || !String((error as Error).message).startsWith('AMQP handshake disconnected')) throw error;
        await sleep(200);
      }
    }
  } catch (error) {
    await broker.kill();
    throw error;
  }
  return broker;
}

/** Opens and closes one AMQP connection (no SASL, ANONYMOUS, or as `user`), proving the broker serves AMQP, not just a socket. */
function amqpHandshake(host: string, port: number, timeoutMs: number, user?: BrokerUser, tlsOptions?: { ca: string; cert?: string; key?: string }, anonymous = false): Promise<void> {
  return new Promise((resolveOpen, reject) => {
    const container = create_container({ id: `rts-test-probe-${process.pid}` });
    // rhea's ANONYMOUS: a user name without a password (for a broker that requires a SASL layer without accounts).
    const login = user ? { username: user.name, password: user.password } : anonymous ? { username: 'anonymous' } : {};
    // rhea sets SNI to the host unless told otherwise, and SNI takes a name, not an address (Node warns, DEP0123).
    const tls = tlsOptions ? { transport: 'tls' as const, ...tlsOptions, ...(isIP(host) === 0 ? {} : { servername: '' }) } : {};
    const connection = container.connect({ host, port, reconnect: false, idle_time_out: 0, ...login, ...tls });
    const timer = setTimeout(() => {
      connection.close();
      reject(new Error(`AMQP handshake with ${host}:${port} timed out`));
    }, timeoutMs);
    connection.on('connection_open', () => {
      clearTimeout(timer);
      connection.close();
    });
    connection.on('connection_close', () => resolveOpen());
    connection.on('connection_error', (context: EventContext) => {
      clearTimeout(timer);
      reject(new Error(`AMQP handshake failed: ${String(context.error ?? connection.error)}`));
    });
    connection.on('disconnected', (context: EventContext) => {
      clearTimeout(timer);
      if (!connection.is_closed()) reject(new Error(`AMQP handshake disconnected: ${String(context.error)}`));
      else resolveOpen();
    });
    connection.on('error', (error: unknown) => {
      clearTimeout(timer);
      reject(error instanceof Error ? error : new Error(String(error)));
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

function portOpen(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolveOpen) => {
    const socket = createConnection({ host, port });
    const done = (open: boolean) => {
      socket.removeAllListeners();
      socket.destroy();
      resolveOpen(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function tail(text: string, lines = 40): string {
  return text.split('\n').slice(-lines).join('\n');
}
