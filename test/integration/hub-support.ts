// Shared by the hub-*.int.spec.ts suites: a hub in-process or as a child process against a test broker, uplink
// envelopes built with serializeUplink, downlink collectors that dedupe by envelope id, and small HTTP helpers.
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { AmqpConnection, DurableSender, QueueConsumer, type HandlerOutcome, type ReceivedMessage } from '../../src/adapters/amqp';
import type { UplinkLike } from '../../src/adapters/messaging/amqp-uplink-consumer';
import { parseDownlink, serializeUplink, type DownlinkEnvelope, type ExpertProfile, type UplinkEnvelope, type UploadedExpert } from '../../src/adapters/messaging/messages';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub, type RunningHub } from '../../src/bootstrap/main';
import { startBroker, type TestBroker } from '../support/activemq';
import { listensOn, settled, spawnChild } from '../support/children';
import type { RtsClient } from '../../src/sdk';
import { mayHoldCprDigits } from '../../src/domain/monitoring/cpr-like';

export const UPLINK = 'rts.uplink';
export const DLQ = 'rts.dlq';
export const downlinkQueue = (systemId: string) => `rts.downlink.${systemId}`;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `predicate` until it holds; on timeout the error names `what` and, when given, `detail()` (the state then). */
export const until = async (what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 60_000, everyMs = 50, detail?: () => string): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}${detail ? `\n${detail()}` : ''}`);
    await sleep(everyMs);
  }
};

/**
 * A fresh broker for this test file, with one connection and a durable sender on it, started before its tests and
 * removed after them (registers beforeAll and afterAll). Read the fields inside the tests: they are set by then.
 */
export const useBroker = (): Readonly<{ broker: TestBroker; connection: AmqpConnection; sender: DurableSender }> => {
  const amq = {} as { broker: TestBroker; connection: AmqpConnection; sender: DurableSender };
  beforeAll(async () => {
    amq.broker = await startBroker();
    amq.connection = connect(amq.broker);
    await amq.connection.waitConnected();
    amq.sender = new DurableSender(amq.connection);
  });
  afterAll(async () => {
    await amq.sender?.close();
    await amq.connection?.close();
    await amq.broker?.destroy();
  });
  return amq;
};

export { tempDir } from '../support/temp-dir';

export const freePort = (): Promise<number> =>
  new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? ok(address.port) : fail(new Error('no port'))));
    });
  });

export const hubEnv = (broker: TestBroker, dataDir: string, extra: Record<string, string> = {}): Record<string, string> => ({
  RTS_DATA_DIR: dataDir,
  RTS_BROKER_URL: broker.url,
  RTS_LOG_LEVEL: 'silent',
  RTS_SHUTDOWN_GRACE_MS: '2000',
  // These suites send plain JSON envelopes; message security has its own suites (hub-consultation, python-client).
  RTS_MESSAGE_SECURITY: 'off',
  // These suites test messaging; access control has its own (API keys / tokens there).
  RTS_AUTH: 'off',
  ...extra,
});

/** A pino logger at `level` whose JSON lines land, parsed, in `lines` (what a test reads back of the hub's log). */
export const jsonLines = (level = 'info'): { logger: pino.Logger; lines: Array<Record<string, unknown>> } => {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    }),
  );
  return { logger, lines };
};

/** The hub in this process (startHub from src/bootstrap/main.ts) on a free port. */
export const startInProcessHub = async (
  broker: TestBroker,
  dataDir: string,
  options: { env?: Record<string, string>; wrapUplink?: (uplink: UplinkLike) => UplinkLike; logger?: pino.Logger } = {},
): Promise<RunningHub> => {
  // freePort's port can be another test's by the time the hub listens: that start fails (EADDRINUSE) and has stopped
  // what it started (hub-start-port-taken.int.spec.ts), so it is tried again on another.
  for (let attempt = 1; ; attempt++) {
    const config = loadConfig({ ...hubEnv(broker, dataDir, options.env), RTS_HTTP_PORT: String(await freePort()) });
    try {
      return await startHub(config, options.logger ?? pino({ level: process.env.HUB_TEST_LOG ?? 'silent' }), options.wrapUplink ? { wrapUplink: options.wrapUplink } : {});
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'EADDRINUSE' || attempt >= 3) throw error;
    }
  }
};

export type ChildHub = Readonly<{ url: string; child: ChildProcess; output(): string; kill(): Promise<void>; stop(): Promise<void> }>;

/** The hub as its own process (the TypeScript sources through test/support/ts-register.js), so it can be SIGKILLed. */
export const startChildHub = async (broker: TestBroker, dataDir: string, port?: number, env: Record<string, string> = {}): Promise<ChildHub> => {
  // As startInProcessHub: a port freePort chose can be another test's by the time the hub listens. That hub stops
  // with "another program listens on this port" (exit 78), and is started again on another; a port the caller
  // named is its own to keep.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startChildHubOn(broker, dataDir, port ?? (await freePort()), env);
    } catch (error) {
      if (port !== undefined || !(error instanceof ChildHubPortTaken) || attempt >= 3) throw error;
    }
  }
};

/** A child hub that stopped at its start because its HTTP port was taken. */
class ChildHubPortTaken extends Error {}

const startChildHubOn = async (broker: TestBroker, dataDir: string, httpPort: number, env: Record<string, string>): Promise<ChildHub> => {
  const root = resolve(__dirname, '..', '..');
  const child = spawnChild(process.execPath, ['-r', join(root, 'test', 'support', 'ts-register.js'), join(root, 'src', 'bootstrap', 'main.ts')], {
    cwd: root,
    env: { ...process.env, ...hubEnv(broker, dataDir, { RTS_LOG_LEVEL: 'warn', ...env }), RTS_HTTP_PORT: String(httpPort) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = settled(child).then(() => undefined);
  const url = `http://127.0.0.1:${httpPort}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) {
      await exited; // its last lines read
      const message = `hub exited during start (code ${child.exitCode}):\n${out}`;
      throw out.includes('another program listens on this port') ? new ChildHubPortTaken(message) : new Error(message);
    }
    try {
      // Only once the socket on the port is the child's own (listensOn): another server there would answer too.
      if (listensOn(child.pid ?? -1, httpPort) && (await fetch(`${url}/health`)).ok) break;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`hub did not become healthy:\n${out}`);
    }
    await sleep(100);
  }
  return {
    url,
    child,
    output: () => out,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
};

// ---- HTTP ----

export const getJson = async <T = any>(base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: T; contentType: string | null }> => {
  const res = await fetch(`${base}${path}`, { headers: { accept: 'application/json', ...headers } });
  return { status: res.status, body: (await res.json()) as T, contentType: res.headers.get('content-type') };
};

export const postJson = async <T = any>(base: string, path: string, body: unknown): Promise<{ status: number; body: T; contentType: string | null }> => {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as T, contentType: res.headers.get('content-type') };
};

export const registerSystem = async (base: string, id: string): Promise<void> => {
  const res = await postJson(base, '/systems', { id, name: `City ${id}`, area: 'Hubei' });
  if (res.status !== 201 && res.status !== 200) throw new Error(`POST /systems ${id}: ${res.status} ${JSON.stringify(res.body)}`);
};

/**
 * Two systems through the SDK, as `connect` makes their clients (pushed to `clients` for closing): chengdu joins with
 * expert c1, mianyang subscribes and joins; resolves once mianyang's downlink brought chengdu:c1.
 */
export const directoryRoundTrip = async (base: string, connect: (systemId: 'chengdu' | 'mianyang') => Promise<RtsClient>, clients: RtsClient[]): Promise<void> => {
  await registerSystem(base, 'chengdu');
  await registerSystem(base, 'mianyang');
  const chengdu = await connect('chengdu');
  clients.push(chengdu);
  await chengdu.joinWithExperts([{ localExpertId: 'c1', ...profile(1) }]);
  const mianyang = await connect('mianyang');
  clients.push(mianyang);
  const seen: string[] = [];
  await mianyang.subscribe({
    onSnapshot: async (m) => void seen.push(...m.payload.experts.map((e) => e.expertId)),
    onExpertUpserted: async (m) => void seen.push(m.payload.expertId),
  });
  await mianyang.joinWithExperts([{ localExpertId: 'm1', ...profile(2) }]);
  await until('mianyang has chengdu:c1', () => seen.includes('chengdu:c1'));
};

/** The error a promise rejects with, or null if it resolves. */
export const failureOf = (promise: Promise<unknown>): Promise<Error | null> =>
  promise.then(
    () => null,
    (error: Error) => error,
  );

/** Register the system over HTTP, send its join request (no experts) and wait until the hub has it joined. */
export const joinSystem = async (base: string, sender: DurableSender, id: string): Promise<void> => {
  await registerSystem(base, id);
  await sendUplink(sender, uplink.join(id, 0, 0));
  await until(`${id} joined`, async () => (await getJson(base, `/systems/${id}`)).body.status === 'joined');
};

// ---- uplink envelopes ----

export const profile = (n: number, over: Partial<ExpertProfile> = {}): ExpertProfile => ({
  name: `Dr. Expert ${n}`,
  title: 'Chief physician',
  specialties: [n % 2 === 0 ? 'cardiology' : 'endocrinology'],
  location: { city: 'Wuhan', hospital: `Hospital ${n % 7}` },
  languages: ['zh'],
  availability: 'available',
  ...over,
});

/**
 * A random UUID that holds no CPR number's digits. The hub's dead-letter views redact a sender's ids that do, and
 * 0.35 % of random UUIDs did before mayHoldCprDigits took a UUID whole (now none does; kept as a guard): a test that finds its dead letter by
 * envelope id then waits for it in vain (CI, hub-dead-letter-discard, once).
 */
export const plainUuid = (): string => {
  for (;;) {
    const id = randomUUID();
    if (!mayHoldCprDigits(id)) return id;
  }
};

const envelope = <T extends UplinkEnvelope['type']>(type: T, systemId: string, payload: Extract<UplinkEnvelope, { type: T }>['payload']): UplinkEnvelope =>
  ({ id: plainUuid(), type, version: 1, systemId, correlationId: `corr-${plainUuid()}`, time: new Date().toISOString(), payload }) as UplinkEnvelope;

export const uplink = {
  join: (systemId: string, expectedBatches: number, expectedExperts: number) => envelope('system.join.requested', systemId, { expectedBatches, expectedExperts }),
  batch: (systemId: string, batchIndex: number, batchCount: number, experts: readonly UploadedExpert[]) => envelope('experts.batch', systemId, { batchIndex, batchCount, experts }),
  registered: (systemId: string, localExpertId: string, p: ExpertProfile, homeSystemId?: string) =>
    envelope('expert.registered', systemId, { localExpertId, profile: p, ...(homeSystemId ? { homeSystemId } : {}) }),
  changed: (systemId: string, localExpertId: string, p: ExpertProfile) => envelope('expert.changed', systemId, { localExpertId, profile: p }),
  retired: (systemId: string, localExpertId: string) => envelope('expert.retired', systemId, { localExpertId }),
};

/** `count` experts split into batches of `size` (the paper's batch upload). */
export const batchesOf = (systemId: string, count: number, size: number, prefix = 'e'): UplinkEnvelope[] => {
  const batchCount = Math.ceil(count / size);
  return Array.from({ length: batchCount }, (_, b) =>
    uplink.batch(
      systemId,
      b,
      batchCount,
      Array.from({ length: Math.min(size, count - b * size) }, (_, i) => {
        const n = b * size + i;
        return { localExpertId: `${prefix}${n}`, ...profile(n) };
      }),
    ),
  );
};

export const sendUplink = (sender: DurableSender, env: UplinkEnvelope, queue = UPLINK): Promise<void> =>
  sender.send(queue, {
    body: serializeUplink(env),
    messageId: env.id,
    correlationId: env.correlationId,
    applicationProperties: { messageId: env.id, type: env.type, version: env.version, systemId: env.systemId, correlationId: env.correlationId },
  });

export const sendRawBody = (sender: DurableSender, body: string, props: Record<string, string> = {}, queue = UPLINK): Promise<void> =>
  sender.send(queue, { body, applicationProperties: props });

export const connect = (broker: TestBroker): AmqpConnection => AmqpConnection.open({ endpoints: [{ host: broker.host, port: broker.amqpPort }] });

// ---- downlink ----

export type Collected = Readonly<{ envelope: DownlinkEnvelope; deliveryCount: number; properties: Readonly<Record<string, unknown>> }>;

/** Consumes one system's downlink queue, keeping every delivery; `decide` may refuse some (retry). */
export class DownlinkCollector {
  readonly deliveries: Collected[] = [];
  readonly bad: string[] = [];
  /** Settlements by kind (accepted, retried, stale, ...): what the consumer did with what it got. */
  readonly outcomes = new Map<string, number>();
  private consumer: QueueConsumer;

  constructor(
    connection: AmqpConnection,
    readonly systemId: string,
    decide: (m: ReceivedMessage, envelope: DownlinkEnvelope) => HandlerOutcome = () => 'accept',
    prefetch = 200,
  ) {
    this.consumer = new QueueConsumer(connection, {
      queue: downlinkQueue(systemId),
      deadLetterQueue: `${downlinkQueue(systemId)}.test-dlq`,
      prefetch,
      maxAttempts: 100,
      onOutcome: (e) => this.outcomes.set(e.kind, (this.outcomes.get(e.kind) ?? 0) + 1),
      handler: async (m) => {
        const parsed = parseDownlink(m.body);
        if (!parsed.ok) {
          this.bad.push(parsed.detail);
          return 'accept';
        }
        const outcome = decide(m, parsed.message);
        this.deliveries.push({ envelope: parsed.message, deliveryCount: m.deliveryCount, properties: m.applicationProperties });
        return outcome;
      },
    });
  }

  start(): Promise<void> {
    return this.consumer.start();
  }

  stop(): Promise<void> {
    return this.consumer.stop();
  }

  /** For a failure message: deliveries, distinct envelopes by type, settlements by kind. */
  describe(): string {
    const byType = new Map<string, number>();
    for (const e of this.distinct()) byType.set(e.type, (byType.get(e.type) ?? 0) + 1);
    return `${this.systemId}: ${this.deliveries.length} deliveries; distinct ${JSON.stringify(Object.fromEntries(byType))}; settled ${JSON.stringify(Object.fromEntries(this.outcomes))}; unparsable ${this.bad.length}`;
  }

  /** Distinct envelopes, first delivery of each id kept (dedupe as a receiving system does). */
  distinct(type?: DownlinkEnvelope['type']): DownlinkEnvelope[] {
    const seen = new Map<string, DownlinkEnvelope>();
    for (const d of this.deliveries) if (!seen.has(d.envelope.id) && (type === undefined || d.envelope.type === type)) seen.set(d.envelope.id, d.envelope);
    return [...seen.values()];
  }

  /** Expert ids of the distinct upserts (from upserted messages and snapshots). */
  upsertedExperts(): Set<string> {
    const ids = new Set<string>();
    for (const e of this.distinct()) {
      if (e.type === 'directory.expert.upserted') ids.add(e.payload.expertId);
      if (e.type === 'directory.snapshot') for (const x of e.payload.experts) ids.add(x.expertId);
    }
    return ids;
  }
}

/**
 * Records, in order, when `other`'s message is applied ('b applied') and when each of `flooder`'s messages fails its
 * last attempt (`maxAttempts`) ('a dead-lettered': the dead letter follows), and how often each of those failed.
 */
export const floodRecorder = (flooder: string, other: string, maxAttempts = 5) => {
  const log: string[] = [];
  const failures = new Map<string, number>();
  const wrapUplink = (real: UplinkLike): UplinkLike => ({
    handleUplink: async (envelope) => {
      try {
        const result = await real.handleUplink(envelope);
        if (envelope.systemId === other) log.push('b applied');
        return result;
      } catch (error) {
        if (envelope.systemId === flooder) {
          const n = (failures.get(envelope.id) ?? 0) + 1;
          failures.set(envelope.id, n);
          if (n === maxAttempts) log.push('a dead-lettered');
        }
        throw error;
      }
    },
  });
  return { log, failures, wrapUplink };
};
