import { randomBytes } from 'node:crypto';
import { DateTime } from 'luxon';
import { Client } from 'pg';
import { PostgresEventStore } from '../../src/adapters/event-store/postgres/postgres-event-store';
import { PUBLISHER_LOCK_CLASS, PostgresPublishingLease } from '../../src/adapters/event-store/postgres/publishing-lease';
import { startStallingProxy } from '../support/stalling-proxy';
import { InMemoryOutbox } from '../../src/adapters/messaging/memory/in-memory-downlink';
import { parseUplink } from '../../src/adapters/messaging/messages';
import { PostgresCheckpointStore } from '../../src/adapters/registry/postgres-checkpoints';
import type { DownlinkEnvelope, UplinkEnvelope, UplinkPayloads, UplinkType } from '../../src/application/directory/directory-messages';
import { uuidV5 } from '../../src/application/ids';
import { PublishingGate } from '../../src/application/publishing-gate';
import { createDirectoryModule, type DirectoryModule } from '../../src/bootstrap/directory-module';

/**
 * The downlink publisher on PostgreSQL (the distributed profile): its checkpoint in the hub's schema
 * (PostgresCheckpointStore), so a restart sends nothing again; and one publisher at a time among processes that
 * share the store (PostgresPublishingLease: a session advisory lock), with a takeover that goes on from the
 * checkpoint when the holder's session ends. Real PostgreSQL; one fresh schema per file, dropped at the end.
 */
const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `rts_publishing_${process.pid}_${randomBytes(4).toString('hex')}`;
const schema2 = `${schema}_two`;
const schema3 = `${schema}_three`;
const schema4 = `${schema}_four`;
const silent = { warn: () => undefined, error: () => undefined, info: () => undefined };
const clock = { now: () => DateTime.utc() };
let n = 0;
const ids = { uuid: () => uuidV5(`publishing-test/${schema}/${n++}`) };

jest.setTimeout(60_000);

let admin: Client;
const opened: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  admin = new Client({ connectionString });
  await admin.connect();
});

afterAll(async () => {
  for (const o of opened.reverse()) await o.close().catch(() => undefined);
  for (const s of [schema, schema2, schema3, schema4]) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  await admin.end();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await sleep(50);
  }
};

const uplink = <T extends UplinkType>(systemId: string, type: T, payload: UplinkPayloads[T], key: string): UplinkEnvelope => {
  const parsed = parseUplink(JSON.stringify({ id: uuidV5(`msg/${schema}/${systemId}/${key}`), type, version: 1, systemId, correlationId: `corr-${systemId}`, time: new Date().toISOString(), payload }));
  if (!parsed.ok) throw new Error(parsed.detail);
  return parsed.message;
};
const profile = (i: number) => ({ name: `Expert ${i}`, title: 'Attending', specialties: ['Cardiology'], location: { city: 'Wuhan', hospital: 'H' }, languages: ['zh'], availability: 'available' as const });

/** A hub process's view of the shared store: its own pool, directory module and checkpoint store on the schema. */
const openProcess = async (on = schema): Promise<{ store: PostgresEventStore; directory: DirectoryModule; checkpoints: PostgresCheckpointStore }> => {
  const store = await PostgresEventStore.open({ connectionString, schema: on });
  opened.push(store);
  const checkpoints = await PostgresCheckpointStore.open(store);
  const directory = createDirectoryModule({ store, clock, ids, logger: silent, checkpoints });
  return { store, directory, checkpoints };
};

/** Two systems joined, and `experts` registered by the first: downlink for both. */
const directoryChanges = async (directory: DirectoryModule, from: number, experts: number): Promise<void> => {
  if (from === 0) {
    for (const id of ['city-a', 'city-b']) {
      await directory.service.registerSystem({ systemId: id, name: id, area: 'Hubei' });
      await directory.uplink.handleUplink(uplink(id, 'system.join.requested', { expectedBatches: 0, expectedExperts: 0 }, 'join'));
    }
  }
  for (let i = from; i < from + experts; i++) await directory.uplink.handleUplink(uplink('city-a', 'expert.registered', { localExpertId: `e${i}`, profile: profile(i) }, `reg/${i}`));
};

const ids_ = (outbox: InMemoryOutbox): string[] => outbox.queueNames().flatMap((q) => outbox.sent(q).map((m: DownlinkEnvelope) => m.id));
const distinct = (...outboxes: InMemoryOutbox[]) => new Set(outboxes.flatMap(ids_));

it('the checkpoint is in PostgreSQL: a publisher started again (a new process) sends only what is new', async () => {
  const first = await openProcess();
  await directoryChanges(first.directory, 0, 5);
  const before = new InMemoryOutbox();
  const p1 = first.directory.downlinkPublisher(before);
  await p1.catchUp();
  // city-b: the join's snapshot and five upserts; city-a: its snapshot (with no one else's experts).
  expect(before.sends).toBeGreaterThanOrEqual(7);
  expect(distinct(before).size).toBe(before.sends);
  await p1.stop();
  expect(await first.checkpoints.get('downlink')).toBeGreaterThan(0n);

  // "Restart": a new pool, a new module and publisher on the same schema, as a hub process after a stop.
  const second = await openProcess();
  const after = new InMemoryOutbox();
  const p2 = second.directory.downlinkPublisher(after);
  await p2.catchUp();
  expect(after.sends).toBe(0); // nothing sent again (on an in-memory checkpoint: everything)
  await directoryChanges(second.directory, 5, 2);
  await p2.catchUp();
  expect(after.sent('rts.downlink.city-b').map((m) => m.type)).toEqual(['directory.expert.upserted', 'directory.expert.upserted']);
  expect(after.sends).toBe(2);
  await p2.stop();
});

it('the checkpoint only grows: a late write from a publisher that lost its lease does not take it back', async () => {
  const { checkpoints } = await openProcess();
  await checkpoints.set('late-test', 40n);
  await checkpoints.set('late-test', 25n);
  expect(await checkpoints.get('late-test')).toBe(40n);
  expect(await checkpoints.get('never-set')).toBe(0n);
});

it('two processes: only the lease holder publishes; when its session ends the other takes over from the checkpoint, nothing lost', async () => {
  const a = await openProcess(schema2);
  const b = await openProcess(schema2);
  const outboxA = new InMemoryOutbox();
  const outboxB = new InMemoryOutbox();
  const logs: string[] = [];
  const logger = (who: string) => ({ info: (_: object, msg: string) => void logs.push(`${who} ${msg}`), warn: (_: object, msg: string) => void logs.push(`${who} ${msg}`) });
  const gate = (p: typeof a, outbox: InMemoryOutbox, who: string) => {
    const lease = new PostgresPublishingLease({ connection: { connectionString }, schema: schema2, retryMs: 200, heartbeatMs: 500 });
    return new PublishingGate({ lease, publishers: [p.directory.downlinkPublisher(outbox)], logger: logger(who) });
  };
  const gateA = gate(a, outboxA, 'A');
  gateA.start();
  await until('A publishes', () => gateA.publishing());
  const gateB = gate(b, outboxB, 'B');
  gateB.start();
  await until('B stands by', () => logs.some((l) => l.startsWith('B downlink publishing: another hub process')));
  expect(gateB.publishing()).toBe(false);

  const upserts = (o: InMemoryOutbox) => o.sent('rts.downlink.city-b').filter((m) => m.type === 'directory.expert.upserted');
  await directoryChanges(a.directory, 0, 10);
  await until('A sent the ten upserts to city-b', () => upserts(outboxA).length >= 10);
  await sleep(500);
  expect(upserts(outboxA)).toHaveLength(10);
  expect(distinct(outboxA).size).toBe(outboxA.sends);
  expect(outboxB.sends).toBe(0);

  // The holder's session ends (what kill -9 of its process, or a failover of the database, does to it).
  const { rows } = await admin.query<{ pid: number }>(
    `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1::int::oid AND objid = hashtext($2)::oid AND objsubid = 2`,
    [PUBLISHER_LOCK_CLASS, schema2],
  );
  expect(rows).toHaveLength(1);
  await admin.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
  await until('B takes over', () => gateB.publishing());
  await until('A knows it lost the lease', () => !gateA.publishing());
  expect(logs).toContain('B downlink publishing taken over: this hub process publishes now, from the stored checkpoints (the previous publisher stopped, or its database session ended)');
  expect(logs.some((l) => l.startsWith('A downlink publishing stopped'))).toBe(true);

  const sentByABefore = outboxA.sends;
  await directoryChanges(b.directory, 200, 4);
  await until('B sent the four new upserts', () => upserts(outboxB).some((m) => m.payload.expertId === 'city-a:e203'));
  await sleep(500);
  // B went on from A's checkpoint: it sent the new messages, not the history A had sent.
  expect(upserts(outboxB).map((m) => m.payload.expertId)).toEqual(['city-a:e200', 'city-a:e201', 'city-a:e202', 'city-a:e203']);
  expect(outboxB.sends).toBe(4);
  expect(outboxA.sends).toBe(sentByABefore);
  // Nothing lost: every expert reached city-b once in effect.
  const cityB = [...outboxA.received('rts.downlink.city-b'), ...outboxB.received('rts.downlink.city-b')];
  const experts = cityB.filter((m) => m.type === 'directory.expert.upserted').map((m) => m.payload.expertId);
  for (const i of [...Array.from({ length: 10 }, (_, k) => k), 200, 201, 202, 203]) expect(experts).toContain(`city-a:e${i}`);

  // A graceful stop of the holder hands over too, and the old holder stands by when it comes back.
  await gateB.stopPublishers();
  await gateB.release();
  await until('A takes over again', () => gateA.publishing(), 10_000);
  await gateA.stopPublishers();
  await gateA.release();
});

it('a holder cut off by a proxy that stopped forwarding (its session still alive on the server) ends that session once it reaches the database again: the lease is not held by nobody for good', async () => {
  // A stuck proxy or pooler keeps its own connection to the server open and answers its keepalives: the server never
  // ends the holder's session, and the holder, its heartbeat unanswered, stopped publishing. Before, every process
  // then stood by (downlink "standby" at each, lag 0 at each) and no one published until that connection went.
  const proxy = await startStallingProxy({ host: new URL(connectionString).hostname, port: Number(new URL(connectionString).port || 5432) });
  opened.push({ close: () => proxy.close() });
  const viaProxy = new URL(connectionString);
  viaProxy.hostname = '127.0.0.1';
  viaProxy.port = String(proxy.port);
  const events: string[] = [];
  const listener = (who: string) => ({ acquired: (how: string) => void events.push(`${who} acquired ${how}`), lost: () => void events.push(`${who} lost`), standby: () => void events.push(`${who} standby`) });
  const a = new PostgresPublishingLease({ connection: { connectionString: viaProxy.toString() }, schema: schema3, retryMs: 200, heartbeatMs: 300 });
  const b = new PostgresPublishingLease({ connection: { connectionString }, schema: schema3, retryMs: 200, heartbeatMs: 300 });
  opened.push({ close: () => a.stop() }, { close: () => b.stop() });
  a.start(listener('A'));
  await until('A holds the lease', () => a.held());
  b.start(listener('B'));
  await until('B stands by', () => events.includes('B standby'));
  const holder = async () =>
    (
      await admin.query<{ pid: number }>(
        `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1::int::oid AND objid = hashtext($2)::oid AND objsubid = 2`,
        [PUBLISHER_LOCK_CLASS, schema3],
      )
    ).rows[0]?.pid;
  const orphan = await holder();
  expect(orphan).toBeDefined();

  proxy.stall(); // A's session carries nothing more either way; the proxy's connection to the server stays open
  proxy.resume(); // new connections go through again
  await until('A lost the lease to its unanswered heartbeat', () => events.includes('A lost'));
  await until('A or B holds the lease again', () => a.held() || b.held());
  expect(a.held() && b.held()).toBe(false);
  const now = await holder();
  expect(now).toBeDefined();
  expect(now).not.toBe(orphan);
  const { rows } = await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [orphan]);
  expect(rows).toHaveLength(0);
});

it('a holder that lost the lease behind a session pooler leaves alone the hub the pooler gave its server backend to', async () => {
  // PgBouncer in session mode (which the README allows for the lock's connection) keeps a server backend when its
  // client goes, resets it (DISCARD ALL: the lock goes) and hands it to the next client: the same pid and backend_start.
  // Reproduced with PgBouncer 1.18: A lost the lease when its connection to the pooler was cut; B took the lease on the
  // backend A had had; A, reconnected, ended that backend as its "orphan" (B lost: 57P01) and took the lease over.
  const events: string[] = [];
  const listener = (who: string) => ({ acquired: (how: string) => void events.push(`${who} acquired ${how}`), lost: () => void events.push(`${who} lost`), standby: () => void events.push(`${who} standby`) });
  const b = new PostgresPublishingLease({ connection: { connectionString }, schema: schema4, retryMs: 200, heartbeatMs: 300 });
  opened.push({ close: () => b.stop() });
  b.start(listener('B'));
  await until('B holds the lease', () => b.held());
  const { rows: held } = await admin.query<{ pid: number; started: string }>(
    `SELECT l.pid, a.backend_start::text AS started FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::int::oid AND l.objid = hashtext($2)::oid AND l.objsubid = 2`,
    [PUBLISHER_LOCK_CLASS, schema4],
  );
  expect(held).toHaveLength(1);
  const a = new PostgresPublishingLease({ connection: { connectionString }, schema: schema4, retryMs: 200, heartbeatMs: 300 });
  opened.push({ close: () => a.stop() });
  // What A remembers of the session it lost, as the pooler leaves it: the server backend B has now (A's session's own
  // mark, a second advisory lock, went with the reset).
  (a as unknown as { orphan: unknown }).orphan = { pid: held[0]!.pid, started: held[0]!.started, mark: 1 };
  a.start(listener('A'));
  await until('A stands by (or took the lease)', () => events.includes('A standby') || a.held());
  const stateChange = async () => (await admin.query<{ at: string }>('SELECT state_change::text AS at FROM pg_stat_activity WHERE pid = $1', [held[0]!.pid])).rows[0]?.at;
  const seen = await stateChange();
  // B's session answers a heartbeat after A's look at its orphan, or it was ended by it.
  await until("B's session answered since, or ended", async () => {
    const now = await stateChange();
    return now === undefined || seen === undefined || now !== seen;
  });
  expect(await stateChange()).toBeDefined();
  expect(b.held()).toBe(true);
  expect(events).not.toContain('B lost');
  await a.stop();
  await b.stop();
});
