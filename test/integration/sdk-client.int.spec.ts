// The SDK (src/sdk) against a real ActiveMQ Classic broker: uplink helpers, the batching join, typed downlink
// handlers with acknowledgement after success, redelivery, dedupe, dead-lettering of malformed messages.
// Broker restarts are in sdk-reconnect.int.spec.ts.
import { randomUUID } from 'node:crypto';
import { AmqpConnection, DLQ_REASON, DLQ_SOURCE_QUEUE, DurableSender, QueueConsumer } from '../../src/adapters/amqp';
import { MAX_BATCH_JSON_BYTES, parseUplink, serializeDownlink, type DownlinkEnvelope, type ExpertProfile, type UploadedExpert } from '../../src/adapters/messaging/messages';
import { JsonCodec, RtsClient, RtsSendError, type DownlinkHandlers } from '../../src/sdk';
import { startBroker, type TestBroker } from '../support/activemq';
import { readQueue } from '../support/sdk-queues';

jest.setTimeout(90000);

const profile = (name: string, city = 'Chengdu'): ExpertProfile => ({
  name,
  title: 'Chief physician',
  specialties: ['cardiology'],
  location: { city, hospital: 'West China Hospital' },
  languages: ['zh', 'en'],
  availability: 'available',
});
const experts = (n: number): UploadedExpert[] => Array.from({ length: n }, (_, i) => ({ localExpertId: `e-${i}`, ...profile(`Expert ${i}`) }));

let seq = 0;
const systemIdFor = (label: string) => `${label}-${process.pid % 1000}-${++seq}`.slice(0, 32);

const downlink = (systemId: string, type: DownlinkEnvelope['type'], payload: unknown, id: string = randomUUID()): DownlinkEnvelope =>
  ({ id, type, version: 1, systemId, correlationId: `corr-${id.slice(0, 8)}`, time: '2026-11-23T10:00:00.000+01:00', payload }) as DownlinkEnvelope;

const expertOf = (systemId: string, local: string, revision = 1) => ({ expertId: `${systemId}:${local}`, homeSystemId: systemId, profile: profile(local), revision });

function until(predicate: () => boolean, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (predicate()) resolve();
      else if (Date.now() > deadline) reject(new Error('condition not met in time'));
      else setTimeout(tick, 20);
    };
    tick();
  });
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('RtsClient against ActiveMQ', () => {
  let broker: TestBroker;
  let hub: AmqpConnection;
  let hubSender: DurableSender;
  let hub2: AmqpConnection | undefined;
  const clients: RtsClient[] = [];

  const connect = async (systemId: string, extra: Partial<Parameters<typeof RtsClient.connect>[0]> = {}) => {
    const client = await RtsClient.connect({ systemId, url: broker.url, uplinkQueue: `rts.test.uplink.${systemId}`, deadLetterQueue: `rts.test.dlq.${systemId}`, ...extra });
    clients.push(client);
    return client;
  };
  const publish = (queue: string, envelope: DownlinkEnvelope) =>
    hubSender.send(queue, { body: serializeDownlink(envelope), applicationProperties: { messageId: envelope.id, type: envelope.type, version: 1, systemId: envelope.systemId, correlationId: envelope.correlationId } });

  beforeAll(async () => {
    broker = await startBroker();
    hub = AmqpConnection.open({ endpoints: [{ host: broker.host, port: broker.amqpPort }] });
    await hub.waitConnected();
    hubSender = new DurableSender(hub);
    hub2 = AmqpConnection.open({ endpoints: [{ host: broker.host, port: broker.amqpPort }] });
    await hub2.waitConnected();
  });

  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await hubSender?.close();
    await hub2?.close();
    await hub?.close();
    await broker?.destroy();
  });

  describe('uplink', () => {
    it('puts valid, durable envelopes with the standard application-properties on the uplink queue', async () => {
      const systemId = systemIdFor('city');
      const client = await connect(systemId);
      const ids = [
        await client.registerExpert('e-1', profile('Li Wei')),
        await client.changeExpert('e-1', { ...profile('Li Wei'), availability: 'limited' }, { correlationId: 'change-42' }),
        await client.retireExpert('e-1'),
        await client.requestJoin({ expectedBatches: 2, expectedExperts: 700, name: 'City A' }),
      ];
      const got = await readQueue(broker, client.uplinkQueue, { count: 4 });
      expect(got).toHaveLength(4);
      const parsed = got.map((m) => {
        expect(typeof m.body).toBe('string');
        expect(m.durable).toBe(true);
        const r = parseUplink(m.body as string);
        if (!r.ok) throw new Error(`${r.reason}: ${r.detail}`);
        expect(m.application_properties).toMatchObject({ messageId: r.message.id, type: r.message.type, version: 1, systemId, correlationId: r.message.correlationId, contentType: 'application/json' });
        return r.message;
      });
      expect(parsed.map((e) => e.id)).toEqual(ids);
      expect(parsed.map((e) => e.type)).toEqual(['expert.registered', 'expert.changed', 'expert.retired', 'system.join.requested']);
      expect(parsed.every((e) => e.systemId === systemId)).toBe(true);
      expect(parsed[1]!.correlationId).toBe('change-42');
      expect(parsed[0]!.correlationId).toBe(parsed[0]!.id);
      expect(parsed[0]!.payload).toEqual({ localExpertId: 'e-1', profile: profile('Li Wei') });
      expect(parsed[3]!.payload).toEqual({ expectedBatches: 2, expectedExperts: 700, name: 'City A' });
      // What each message is about, as its AMQP group-id: ActiveMQ keeps a group on one consumer (one hub).
      expect(got.map((m) => m.group_id)).toEqual([`expert/${systemId}:e-1`, `expert/${systemId}:e-1`, `expert/${systemId}:e-1`, `system/${systemId}`]);
    });

    it('with two competing consumers (two hubs), every message about one expert goes to the same one, in the order sent', async () => {
      const systemId = systemIdFor('groups');
      const client = await connect(systemId);
      const seen: { consumer: number; expert: string; step: string }[] = [];
      const consumers = [0, 1].map(
        (k) =>
          new QueueConsumer(k === 0 ? hub : hub2!, {
            queue: client.uplinkQueue,
            deadLetterQueue: `${client.uplinkQueue}.dlq`,
            prefetch: 5,
            maxAttempts: 5,
            handler: async (m) => {
              const r = parseUplink(m.body);
              if (!r.ok) throw new Error(r.detail);
              const payload = r.message.payload as { localExpertId: string; profile: ExpertProfile };
              seen.push({ consumer: k, expert: payload.localExpertId, step: payload.profile.name });
              await sleep(2); // a hub's work, so both consumers stay busy
              return 'accept';
            },
          }),
      );
      // All sent before the consumers attach (a hub restarting): the broker splits them between the two.
      const experts = Array.from({ length: 24 }, (_, i) => `e-${i}`);
      await Promise.all(experts.map((x) => client.registerExpert(x, profile('step 1'))));
      await Promise.all(experts.map((x) => client.changeExpert(x, profile('step 2'))));
      await Promise.all(experts.map((x) => client.changeExpert(x, profile('step 3'))));
      await Promise.all(consumers.map((c) => c.start()));
      await until(() => seen.length === 72);
      for (const c of consumers) await c.stop();
      for (const x of experts) {
        const mine = seen.filter((s) => s.expert === x);
        expect({ x, consumers: [...new Set(mine.map((s) => s.consumer))].length, steps: mine.map((s) => s.step) }).toEqual({ x, consumers: 1, steps: ['step 1', 'step 2', 'step 3'] });
      }
      expect(new Set(seen.map((s) => s.consumer)).size).toBe(2); // both took part
    });

    it('gives deterministic envelope ids for a messageId, random ones otherwise; refuses a bad message without sending', async () => {
      const systemId = systemIdFor('ids');
      const client = await connect(systemId);
      const a = await client.registerExpert('e-7', profile('A'), { messageId: 'hr-row-7-v1' });
      const b = await client.registerExpert('e-7', profile('A'), { messageId: 'hr-row-7-v1' });
      const c = await client.registerExpert('e-7', profile('A'));
      expect(a).toBe(b);
      expect(c).not.toBe(a);
      const uuid = randomUUID();
      expect(await client.retireExpert('e-7', { messageId: uuid })).toBe(uuid);
      await expect(client.registerExpert('not ok!', profile('A'))).rejects.toThrow(TypeError);
      await expect(client.registerExpert('e-8', { ...profile('A'), specialties: [] })).rejects.toThrow(/specialties/);
      const got = await readQueue(broker, client.uplinkQueue, { count: 5, idleMs: 1500 });
      expect(got).toHaveLength(4);
    });

    it('refuses at once a message within the contract whose body the broker would not take, and the connection stays up', async () => {
      // A visible character and 99,999 control characters (a summary of control characters alone shows nothing and is
      // refused before it is sent) pass the summary's limit and escape to 600 KB of JSON, ~1.07 MB as JOSE: the broker
      // closed the client's connection at each of 25 resends, and the caller got a misleading timeout.
      const systemId = systemIdFor('large');
      // A codec that grows the body as JOSE does (base64 of an encryption of it); JSON's own is under the limit.
      const json = new JsonCodec();
      const growing = { name: 'grows', encode: (e: Parameters<JsonCodec['encode']>[0]) => ({ ...json.encode(e), body: Buffer.from(json.encode(e).body).toString('base64') + ' '.repeat(250_000) }), decode: json.decode.bind(json) };
      const client = await connect(systemId, { codec: growing });
      const started = Date.now();
      const error = await client
        .requestConsultation({ applicantClinician: 'dr-a', candidates: ['other:x'], clinicalQuestion: 'q', summary: `x${'\u0001'.repeat(99_999)}` })
        .then(() => null, (e: unknown) => e);
      expect(error).toBeInstanceOf(RtsSendError);
      expect(error).toMatchObject({ reason: 'too_large', attempts: 0 });
      expect(Date.now() - started).toBeLessThan(5_000);
      await client.registerExpert('e-1', profile('A')); // the same connection goes on
      expect(await readQueue(broker, client.uplinkQueue, { count: 2, idleMs: 1500 })).toHaveLength(1);
      await client.close();
    });

    it('joinWithExperts sends the join request, then batches of 500, and resolves when the broker has all', async () => {
      const systemId = systemIdFor('join');
      const client = await connect(systemId);
      const result = await client.joinWithExperts(experts(1201), { name: 'Join City' });
      expect(result).toMatchObject({ batches: 3, experts: 1201 });
      const got = await readQueue(broker, client.uplinkQueue, { count: 4 });
      const parsed = got.map((m) => {
        const r = parseUplink(m.body as string);
        if (!r.ok) throw new Error(r.detail);
        return r.message;
      });
      expect(parsed[0]).toMatchObject({ type: 'system.join.requested', id: result.requestId, payload: { expectedBatches: 3, expectedExperts: 1201, name: 'Join City' } });
      const batches = parsed.slice(1).map((e) => (e.type === 'experts.batch' ? e.payload : undefined)).sort((x, y) => x!.batchIndex - y!.batchIndex);
      expect(batches.map((b) => [b!.batchIndex, b!.batchCount, b!.experts.length])).toEqual([
        [0, 3, 500],
        [1, 3, 500],
        [2, 3, 201],
      ]);
      expect(new Set(parsed.map((e) => e.correlationId))).toEqual(new Set([result.correlationId]));
      expect(new Set(batches.flatMap((b) => b!.experts.map((e) => e.localExpertId))).size).toBe(1201);

      // The same messageId gives the same ids: a retried join is recognised by the hub.
      const once = await client.joinWithExperts(experts(3), { messageId: 'join-2026-11', batchSize: 2 });
      const again = await client.joinWithExperts(experts(3), { messageId: 'join-2026-11', batchSize: 2 });
      expect(again).toEqual(once);
      expect(once.batches).toBe(2);
    });

    it('joinWithExperts checks every batch before it announces the join: a bad expert sends nothing at all', async () => {
      const client = await connect(systemIdFor('badjoin'));
      const all = Array.from({ length: 30 }, (_, i) => ({ localExpertId: `e-${i}`, ...profile(`Dr. ${i}`) }));
      // The last batch's expert breaks the contract (a name over 200 characters).
      all[29] = { ...all[29]!, name: 'x'.repeat(201) };
      await expect(client.joinWithExperts(all, { batchSize: 10 })).rejects.toThrow(/experts\.9\.name/);
      // Nothing reached the uplink queue: no join announced that no batch would ever fill. A good message sent after
      // is the first on it.
      const marker = await client.joinWithExperts(all.slice(0, 2));
      const got = await readQueue(broker, client.uplinkQueue, { count: 10, idleMs: 1_000 });
      expect(got.map((m) => m.message_id)).toEqual([marker.requestId, ...marker.batchIds]);
    });

    it('joinWithExperts also cuts by size: 120 experts with long profiles in Chinese go in batches the broker takes', async () => {
      // ~7.5 KiB of JSON an expert, ~900 KiB for 120: one batch by count, over the broker's 1 MiB once sent.
      const han = (length: number) => '\u75c5'.repeat(length);
      const long = (i: number): UploadedExpert => ({ localExpertId: `long-${i}`, ...profile(han(200)), title: han(100), specialties: Array.from({ length: 20 }, () => han(100)), location: { city: han(100), hospital: han(200) } });
      const client = await connect(systemIdFor('big'));
      const all = Array.from({ length: 120 }, (_, i) => long(i));
      const result = await client.joinWithExperts(all);
      expect(result.batches).toBeGreaterThan(1);
      const got = await readQueue(broker, client.uplinkQueue, { count: result.batches + 1 });
      const batches = got.map((m) => parseUplink(m.body as string)).flatMap((r) => (r.ok && r.message.type === 'experts.batch' ? [r.message.payload] : []));
      expect(batches).toHaveLength(result.batches);
      expect(batches.reduce((n, b) => n + b.experts.length, 0)).toBe(120);
      for (const b of batches) expect(Buffer.byteLength(JSON.stringify(b.experts))).toBeLessThanOrEqual(MAX_BATCH_JSON_BYTES);
    });
  });

  describe('downlink', () => {
    it('calls the typed handler of each downlink type and acknowledges after it resolved', async () => {
      const systemId = systemIdFor('sub');
      const client = await connect(systemId);
      const seen: string[] = [];
      const handlers: DownlinkHandlers = {
        onExpertUpserted: async (m) => void seen.push(`upserted ${m.payload.expertId} r${m.payload.revision}`),
        onExpertRetired: async (m) => void seen.push(`retired ${m.payload.expertId}`),
        onSnapshot: async (m) => void seen.push(`snapshot ${m.payload.batchIndex + 1}/${m.payload.batchCount} ${m.payload.experts.length}`),
        onSystemJoined: async (m) => void seen.push(`joined ${m.payload.systemId} ${m.payload.area}`),
      };
      await client.subscribe(handlers);
      await publish(client.downlinkQueue, downlink(systemId, 'directory.expert.upserted', expertOf('other', 'x1', 3)));
      await publish(client.downlinkQueue, downlink(systemId, 'directory.expert.retired', { expertId: 'other:x1', homeSystemId: 'other', revision: 4 }));
      await publish(client.downlinkQueue, downlink(systemId, 'directory.snapshot', { snapshotId: randomUUID(), batchIndex: 0, batchCount: 1, experts: [expertOf('other', 'x2')] }));
      // Unknown fields are tolerated (a newer hub may add some).
      await publish(client.downlinkQueue, { ...downlink(systemId, 'system.joined', { systemId: 'other', name: 'Other', area: 'Mianyang', since: 'x' }) } as DownlinkEnvelope);
      await until(() => seen.length === 4);
      expect(seen).toEqual(['upserted other:x1 r3', 'retired other:x1', 'snapshot 1/1 1', 'joined other Mianyang']);
      await client.close();
      // Nothing left on the queue: all four were accepted.
      expect(await readQueue(broker, client.downlinkQueue, { count: 1, idleMs: 1000 })).toHaveLength(0);
    });

    it('hands a message back when its handler throws; it is redelivered and processed; a repeat id reaches the handler once', async () => {
      const systemId = systemIdFor('retry');
      const client = await connect(systemId);
      const attempts: number[] = [];
      const at: number[] = [];
      const done: string[] = [];
      await client.subscribe({
        onExpertUpserted: async (m, info) => {
          if (m.payload.expertId.endsWith(':flaky')) {
            attempts.push(info.attempt);
            at.push(Date.now());
            if (info.attempt < 3) throw new Error('database busy');
          }
          done.push(m.payload.expertId);
        },
      });
      await publish(client.downlinkQueue, downlink(systemId, 'directory.expert.upserted', expertOf('other', 'flaky')));
      const dup = downlink(systemId, 'directory.expert.upserted', expertOf('other', 'dup'));
      await publish(client.downlinkQueue, dup);
      await publish(client.downlinkQueue, dup);
      await until(() => done.includes('other:flaky'));
      await sleep(500);
      expect(attempts).toEqual([1, 2, 3]);
      // Handed back after 1 s, then 2 s (retryDelayMs, default 1000, doubling): five attempts span ~15 s, so a
      // handler's store that is away for a few seconds does not send the message to the dead letter queue.
      expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(950);
      expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(1950);
      expect(done.filter((d) => d === 'other:dup')).toHaveLength(1);
      // A repeat after processing (the hub re-sent it) is also skipped.
      await publish(client.downlinkQueue, dup);
      await sleep(700);
      expect(done.filter((d) => d === 'other:dup')).toHaveLength(1);
      await client.close();
      expect(await readQueue(broker, client.downlinkQueue, { count: 1, idleMs: 1000 })).toHaveLength(0);
    });

    it('dead-letters malformed, misaddressed and unknown messages with a reason, without crashing, while good ones flow', async () => {
      const systemId = systemIdFor('poison');
      const client = await connect(systemId);
      const good: string[] = [];
      await client.subscribe({ onExpertUpserted: (m) => void good.push(m.payload.expertId) });
      await hubSender.send(client.downlinkQueue, { body: '{"id": not json', applicationProperties: { messageId: 'p1' } });
      await publish(client.downlinkQueue, downlink(systemId, 'directory.expert.upserted', expertOf('other', 'g1')));
      await hubSender.send(client.downlinkQueue, { body: JSON.stringify({ ...downlink(systemId, 'directory.expert.retired', {}) }), applicationProperties: { messageId: 'p2' } });
      await publish(client.downlinkQueue, downlink('someone-else', 'directory.expert.upserted', expertOf('other', 'g9')));
      await hubSender.send(client.downlinkQueue, { body: JSON.stringify({ ...downlink(systemId, 'directory.expert.upserted', {}), type: 'billing.invoiced' }), applicationProperties: { messageId: 'p4' } });
      await hubSender.send(client.downlinkQueue, { body: JSON.stringify({ ...downlink(systemId, 'directory.expert.upserted', {}), version: 2 }), applicationProperties: { messageId: 'p5' } });
      await publish(client.downlinkQueue, downlink(systemId, 'directory.expert.upserted', expertOf('other', 'g2')));
      await until(() => good.length === 2);
      const dead = await readQueue(broker, client.deadLetterQueue, { count: 5 });
      const reasons = Object.fromEntries(dead.map((m) => [String(m.application_properties?.['messageId']), String(m.application_properties?.[DLQ_REASON])]));
      expect(Object.keys(reasons)).toHaveLength(5);
      expect(reasons['p1']).toMatch(/^bad_json: /);
      expect(reasons['p2']).toMatch(/^bad_schema: payload/);
      expect(Object.values(reasons).some((r) => /^wrong_receiver: addressed to system someone-else/.test(r))).toBe(true);
      expect(reasons['p4']).toMatch(/^unknown_type: type/);
      expect(reasons['p5']).toMatch(/^unknown_type: version/);
      expect(dead.every((m) => m.application_properties?.[DLQ_SOURCE_QUEUE] === client.downlinkQueue)).toBe(true);
      // Each with a dead letter id made of the message (a copy sent again after a lost accept carries the same one).
      const ids = dead.map((m) => String(m.application_properties?.['rts_dlq_id']));
      expect(ids.every((id) => /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id))).toBe(true);
      expect(new Set(ids).size).toBe(5);
      expect(good).toEqual(['other:g1', 'other:g2']);
      expect(client.isConnected()).toBe(true);
    });

    it('gives messages of an unknown type to onUnknown when there is one', async () => {
      const systemId = systemIdFor('unknown');
      const client = await connect(systemId);
      const unknown: string[] = [];
      await client.subscribe({ onUnknown: (m) => void unknown.push(`${m.type} ${m.reason}`) });
      await hubSender.send(client.downlinkQueue, { body: JSON.stringify({ ...downlink(systemId, 'system.joined', {}), type: 'billing.invoiced' }) });
      await until(() => unknown.length === 1);
      expect(unknown).toEqual(['billing.invoiced unknown_type']);
    });

    it('close() lets a running handler finish and acknowledges its message', async () => {
      const systemId = systemIdFor('drain');
      const client = await connect(systemId);
      let started = false;
      let finished = false;
      await client.subscribe({
        onSystemJoined: async () => {
          started = true;
          await sleep(800);
          finished = true;
        },
      });
      await publish(client.downlinkQueue, downlink(systemId, 'system.joined', { systemId: 'other', name: 'Other', area: 'A' }));
      await until(() => started);
      await client.close();
      expect(finished).toBe(true);
      expect(await readQueue(broker, client.downlinkQueue, { count: 1, idleMs: 1000 })).toHaveLength(0);
      await expect(client.registerExpert('e-1', profile('late'))).rejects.toThrow(/closed/);
    });
  });
});
