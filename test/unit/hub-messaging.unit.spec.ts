// The hub's AMQP side without a broker: RTS_BROKER_URL parsing and config, the uplink outcome mapping, the
// dead letter tagging and replay copies, the downlink message shape, and the dead letter use case.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DateTime } from 'luxon';
import { types, type Message } from 'rhea';
import { asStorageFailure } from '../../src/adapters/event-store/sqlite/storage-failure';
import { DeadLetterDiscardedError, DeadLetterService, UnavailableError, hubReplayTargets, type DeadLetter, type DeadLetterQueue, type ReplaySelection, type ReplayTargets } from '../../src/application/directory/dead-letter-operations';
import type { UplinkEnvelope } from '../../src/application/directory/directory-messages';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { DLQ_ATTEMPTS, DLQ_AT, DLQ_REASON, DLQ_SOURCE_QUEUE, type ReceivedMessage } from '../../src/adapters/amqp/queue-consumer';
import { parseBrokerUrl } from '../../src/adapters/messaging/amqp-broker-url';
import { DLQ_ID, HANDLER_TIMEOUT_MS, envelopeIdOf, retryBackoff, tagDeadLetter, uplinkGroupId, uplinkMessageHandler, uplinkOrderKeys, uplinkTraceOf } from '../../src/adapters/messaging/amqp-uplink-consumer';
import { REPLAY_COUNT, REPLAYED_FROM_DLQ, contentIdOf, replayCopy, selectorFor, toDeadLetter } from '../../src/adapters/messaging/dead-letters';
import { serializeUplink } from '../../src/adapters/messaging/messages';
import { deadLetterSummary } from '../../src/adapters/http/dead-letter-routes';
import { DeadLetterSummary } from '../../src/adapters/http/response-schemas';
import { ConfigError, loadConfig, messagingConfig } from '../../src/bootstrap/config';
import { createDirectoryModule } from '../../src/bootstrap/directory-module';
import { ConflictError, ForbiddenError, NotFoundError } from '../../src/domain/shared/errors';

const received = (body: string): ReceivedMessage => ({
  body,
  applicationProperties: {},
  messageId: undefined,
  correlationId: undefined,
  subject: undefined,
  deliveryCount: 0,
  attempt: 1,
  queue: 'rts.uplink',
  raw: { body },
});

const registered = (systemId = 'city-a'): UplinkEnvelope => ({
  id: randomUUID(),
  type: 'expert.registered',
  version: 1,
  systemId,
  correlationId: 'c-1',
  time: '2024-05-01T10:00:00Z',
  payload: {
    localExpertId: 'e1',
    profile: { name: 'Dr. Li', title: 'MD', specialties: ['cardiology'], location: { city: 'Wuhan', hospital: 'Union' }, languages: ['zh'], availability: 'available' },
  },
});

describe('parseBrokerUrl', () => {
  it('reads one address, a comma list and a failover list', () => {
    expect(parseBrokerUrl('amqp://127.0.0.1:5673')).toEqual([{ host: '127.0.0.1', port: 5673 }]);
    expect(parseBrokerUrl('amqp://a:5673, amqp://b:5674')).toEqual([{ host: 'a', port: 5673 }, { host: 'b', port: 5674 }]);
    expect(parseBrokerUrl('failover:(amqp://a:5673,amqp://b)?randomize=false')).toEqual([{ host: 'a', port: 5673 }, { host: 'b', port: 5672 }]);
  });

  it('reads TLS addresses, amqps:// (port 5671 by default) and ActiveMQ\'s amqp+ssl://, also mixed in a list', () => {
    expect(parseBrokerUrl('amqps://mq.example.org')).toEqual([{ host: 'mq.example.org', port: 5671, tls: true }]);
    expect(parseBrokerUrl('failover:(amqps://a:5680,amqp+ssl://b:5681,amqp://c)')).toEqual([
      { host: 'a', port: 5680, tls: true },
      { host: 'b', port: 5681, tls: true },
      { host: 'c', port: 5672 },
    ]);
    expect(() => parseBrokerUrl('amqps://user:secret@a:5671')).toThrow(/RTS_BROKER_USERNAME/);
  });

  it('refuses other schemes, credentials in the URL, paths and empty lists', () => {
    expect(() => parseBrokerUrl('http://a:5673')).toThrow(/amqp:\/\//);
    expect(() => parseBrokerUrl('amqp://user:secret@a:5673')).toThrow(/RTS_BROKER_USERNAME/);
    expect(() => parseBrokerUrl('amqp://a:5673/vhost')).toThrow(/without a path/);
    expect(() => parseBrokerUrl(' , ')).toThrow(/no broker/);
    expect(() => parseBrokerUrl('failover:amqp://a')).toThrow(/failover:\(/);
  });
});

describe('messaging configuration', () => {
  const problems = (env: Record<string, string>): readonly string[] => {
    try {
      loadConfig(env);
    } catch (error) {
      return (error as ConfigError).problems;
    }
    throw new Error('expected a ConfigError');
  };

  it('is off without RTS_BROKER_URL (embedded profile)', () => {
    expect(messagingConfig(loadConfig({}))).toBeNull();
  });

  it('has sane defaults once a broker is given', () => {
    expect(messagingConfig(loadConfig({ RTS_BROKER_URL: 'amqp://127.0.0.1:5673' }))).toEqual({
      endpoints: [{ host: '127.0.0.1', port: 5673 }],
      sasl: { mechanism: 'anonymous' },
      uplinkQueue: 'rts.uplink',
      deadLetterQueue: 'rts.dlq',
      downlinkQueuePrefix: 'rts.downlink.',
      uplinkMaxAttempts: 5,
      uplinkPrefetch: 200,
      uplinkRetryDelayMs: 250,
      uplinkHandlerTimeoutMs: HANDLER_TIMEOUT_MS,
      downlinkStallAfterMs: 60_000,
      deadLetterDepthEveryMs: 15_000,
    });
    const m = messagingConfig(
      loadConfig({ RTS_BROKER_URL: 'amqp://h:1', RTS_BROKER_USERNAME: 'hub', RTS_BROKER_PASSWORD: 'pw', RTS_UPLINK_MAX_ATTEMPTS: '3', RTS_UPLINK_PREFETCH: '10', RTS_UPLINK_QUEUE: 'up', RTS_UPLINK_RETRY_DELAY_MS: '0', RTS_UPLINK_HANDLER_TIMEOUT_MS: '5000', RTS_DOWNLINK_STALL_AFTER_MS: '300000', RTS_DEAD_LETTER_DEPTH_EVERY_MS: '1000' }),
    );
    expect(m).toMatchObject({ sasl: { mechanism: 'plain', username: 'hub', password: 'pw' }, uplinkMaxAttempts: 3, uplinkPrefetch: 10, uplinkQueue: 'up', uplinkRetryDelayMs: 0, uplinkHandlerTimeoutMs: 5000, downlinkStallAfterMs: 300_000, deadLetterDepthEveryMs: 1000 });
    expect(problems({ RTS_BROKER_URL: 'amqp://h:1', RTS_DEAD_LETTER_DEPTH_EVERY_MS: '999' }).some((x) => x.startsWith('RTS_DEAD_LETTER_DEPTH_EVERY_MS:'))).toBe(true);
    expect([1, 2, 3, 4, 5, 6].map(retryBackoff(250))).toEqual([250, 500, 1000, 2000, 4000, 5000]);
  });

  it('names the bad variable, never its value', () => {
    const p = problems({ RTS_BROKER_URL: 'amqp://hub:s3cret@h:1', RTS_UPLINK_MAX_ATTEMPTS: '0', RTS_UPLINK_QUEUE: 'bad queue' });
    expect(p.some((x) => x.startsWith('RTS_BROKER_URL:'))).toBe(true);
    expect(p.some((x) => x.startsWith('RTS_UPLINK_MAX_ATTEMPTS:'))).toBe(true);
    expect(p.some((x) => x.startsWith('RTS_UPLINK_QUEUE:'))).toBe(true);
    expect(p.join('\n')).not.toContain('s3cret');
    // A stall time shorter than two lag samples (5 s apart) would call a busy publisher stalled.
    for (const bad of ['999', '600001', '5s']) expect(problems({ RTS_BROKER_URL: 'amqp://h', RTS_UPLINK_HANDLER_TIMEOUT_MS: bad }).some((x) => x.startsWith('RTS_UPLINK_HANDLER_TIMEOUT_MS:'))).toBe(true);
    for (const bad of ['5000', '60s', '1e5', '3600001']) expect(problems({ RTS_BROKER_URL: 'amqp://h', RTS_DOWNLINK_STALL_AFTER_MS: bad }).some((x) => x.startsWith('RTS_DOWNLINK_STALL_AFTER_MS:'))).toBe(true);
    expect(problems({ RTS_BROKER_USERNAME: 'hub' })).toContain('RTS_BROKER_PASSWORD: required when RTS_BROKER_USERNAME is set');
  });

  it('reads the CA of RTS_BROKER_TLS_CA, and refuses a file it cannot read or that holds no certificate', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rts-tls-ca-'));
    try {
      const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
      writeFileSync(join(dir, 'ca.pem'), pem);
      writeFileSync(join(dir, 'key.txt'), 'not a certificate');
      expect(messagingConfig(loadConfig({ RTS_BROKER_URL: 'amqps://h', RTS_BROKER_TLS_CA: join(dir, 'ca.pem') }))?.tls).toEqual({ ca: pem });
      expect(messagingConfig(loadConfig({ RTS_BROKER_URL: 'amqps://h' }))?.tls).toBeUndefined();
      expect(problems({ RTS_BROKER_TLS_CA: join(dir, 'missing.pem') })).toContain('RTS_BROKER_TLS_CA: cannot read the file (ENOENT)');
      expect(problems({ RTS_BROKER_TLS_CA: join(dir, 'key.txt') })).toContain('RTS_BROKER_TLS_CA: the file holds no PEM certificate (-----BEGIN CERTIFICATE-----)');

      // A client certificate for mutual TLS: with its key, both read; one without the other, or a key file without
      // a key, is refused by name (never by content).
      const key = '-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n';
      writeFileSync(join(dir, 'hub.key'), key);
      expect(messagingConfig(loadConfig({ RTS_BROKER_URL: 'amqps://h', RTS_BROKER_TLS_CERT: join(dir, 'ca.pem'), RTS_BROKER_TLS_KEY: join(dir, 'hub.key') }))?.tls).toEqual({ cert: pem, key });
      expect(problems({ RTS_BROKER_TLS_CERT: join(dir, 'ca.pem') })).toContain('RTS_BROKER_TLS_KEY: required when RTS_BROKER_TLS_CERT is set');
      expect(problems({ RTS_BROKER_TLS_KEY: join(dir, 'hub.key') })).toContain('RTS_BROKER_TLS_CERT: required when RTS_BROKER_TLS_KEY is set');
      const wrongKey = problems({ RTS_BROKER_TLS_CERT: join(dir, 'ca.pem'), RTS_BROKER_TLS_KEY: join(dir, 'key.txt') });
      expect(wrongKey).toContain('RTS_BROKER_TLS_KEY: the file holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)');
      expect(wrongKey.join('\n')).not.toContain('not a certificate');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('uplinkMessageHandler', () => {
  it('accepts what the handler applied, and dead-letters what can never succeed with its cause', async () => {
    const ok = uplinkMessageHandler({ handleUplink: async () => ({ outcome: 'applied' }) });
    expect(await ok(received(serializeUplink(registered())))).toBe('accept');
    expect(await ok(received('{not json'))).toEqual({ deadLetter: 'bad_json: the body is not valid JSON' });
    const bad = await ok(received(JSON.stringify({ ...registered(), payload: {} })));
    expect(bad).toEqual({ deadLetter: expect.stringMatching(/^bad_schema: /) });

    // "<code>: <detail>": the error's sentence, or the fields it names (a bare code left the sender guessing).
    const unknown = uplinkMessageHandler({ handleUplink: async () => Promise.reject(new NotFoundError('unknown_system', 'no system is registered with this id')) });
    expect(await unknown(received(serializeUplink(registered())))).toEqual({ deadLetter: 'unknown_system: no system is registered with this id' });
    const other = uplinkMessageHandler({ handleUplink: async () => Promise.reject(new ForbiddenError('expert_owned_by_other_system', 'the expert belongs to another system', [{ path: 'payload.localExpertId', message: 'registered by another system' }])) });
    expect(await other(received(serializeUplink(registered())))).toEqual({ deadLetter: 'expert_owned_by_other_system: payload.localExpertId registered by another system' });
  });

  it('retries anything else, naming the error but not its message', async () => {
    const failing = uplinkMessageHandler({ handleUplink: async () => Promise.reject(Object.assign(new Error('payload Dr. Li'), { code: 'SQLITE_BUSY' })) });
    const outcome = await failing(received(serializeUplink(registered())));
    expect(outcome).toEqual({ retry: 'transient failure: Error (SQLITE_BUSY)' });
    expect(JSON.stringify(outcome)).not.toContain('Dr. Li');
  });

  it('hands back what the hub cannot do now (its disk full) as later, uncounted: an UnavailableError is no fault of the message', async () => {
    const full = asStorageFailure(Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' }));
    expect(full).toBeInstanceOf(UnavailableError);
    const failing = uplinkMessageHandler({ handleUplink: async () => Promise.reject(full) });
    expect(await failing(received(serializeUplink(registered())))).toEqual({ later: 'transient failure: storage_unavailable' });
  });
});

describe('uplinkMessageHandler: order per expert', () => {
  const about = (localExpertId: string, type: 'expert.registered' | 'expert.changed' = 'expert.registered'): UplinkEnvelope =>
    ({ ...registered(), type, payload: { ...(registered().payload as object), localExpertId } }) as UplinkEnvelope;
  const attempt = (body: string, n: number): ReceivedMessage => ({ ...received(body), deliveryCount: n - 1, attempt: n });

  it('handles the messages about one expert one at a time in arrival order, other experts at once', async () => {
    const log: string[] = [];
    const slow: Record<string, () => void> = {};
    const handler = uplinkMessageHandler({
      handleUplink: async (e) => {
        const x = (e.payload as { localExpertId: string }).localExpertId;
        if (e.type === 'expert.registered' && x === 'e1') await new Promise<void>((r) => (slow[x] = r));
        log.push(`${e.type} ${x}`);
        return { outcome: 'applied' };
      },
    });
    const first = handler(received(serializeUplink(about('e1'))));
    const change = handler(received(serializeUplink(about('e1', 'expert.changed'))));
    const other = handler(received(serializeUplink(about('e2'))));
    expect(await other).toBe('accept');
    expect(log).toEqual(['expert.registered e2']); // e1's change waits for e1's registration
    slow['e1']!();
    expect(await Promise.all([first, change])).toEqual(['accept', 'accept']);
    expect(log).toEqual(['expert.registered e2', 'expert.registered e1', 'expert.changed e1']);
  });

  it("handles one system's batches one at a time (they all record on its stream), other systems' at once", async () => {
    const batch = (systemId: string, batchIndex: number, ids: string[]): UplinkEnvelope =>
      ({ ...registered(), id: randomUUID(), systemId, type: 'experts.batch', payload: { batchIndex, batchCount: 2, experts: ids.map((localExpertId) => ({ localExpertId, ...(registered().payload as { profile: object }).profile })) } }) as unknown as UplinkEnvelope;
    let running = 0;
    let most = 0;
    const release: Array<() => void> = [];
    const handler = uplinkMessageHandler({
      handleUplink: async (e) => {
        if (e.systemId !== 'city-a') return { outcome: 'applied' };
        most = Math.max(most, ++running);
        await new Promise<void>((r) => release.push(r));
        running--;
        return { outcome: 'applied' };
      },
    });
    const a0 = handler(received(serializeUplink(batch('city-a', 0, ['x1', 'x2']))));
    const a1 = handler(received(serializeUplink(batch('city-a', 1, ['x3', 'x4']))));
    // Another system's batch is not held up by city-a's.
    expect(await handler(received(serializeUplink(batch('city-b', 0, ['y1']))))).toBe('accept');
    while (release.length < 1) await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 20));
    expect(release).toHaveLength(1); // the second batch waits for the first
    release.shift()!();
    while (release.length < 1) await new Promise((r) => setImmediate(r));
    release.shift()!();
    expect(await Promise.all([a0, a1])).toEqual(['accept', 'accept']);
    expect(most).toBe(1);
  });

  it('a message handed back for another attempt keeps its place: the next about the same expert waits for it to come again', async () => {
    const log: string[] = [];
    let failNext = true;
    const handler = uplinkMessageHandler(
      {
        handleUplink: async (e) => {
          const step = `${e.type} ${(e.payload as { localExpertId: string }).localExpertId}`;
          if (e.type === 'expert.registered' && failNext) {
            failNext = false;
            log.push(`${step} failed`);
            throw new NotFoundError('system_not_joined', 'not yet');
          }
          log.push(step);
          return { outcome: 'applied' };
        },
      },
      {},
      { maxAttempts: 3 },
    );
    const registration = serializeUplink(about('e1'));
    expect(await handler(received(registration))).toEqual({ retry: 'system_not_joined' });
    const change = handler(received(serializeUplink(about('e1', 'expert.changed'))));
    await new Promise((r) => setImmediate(r));
    expect(log).toEqual(['expert.registered e1 failed']); // the change waits
    expect(await handler(attempt(registration, 2))).toBe('accept'); // the broker delivers it again: it goes first
    expect(await change).toBe('accept');
    expect(log).toEqual(['expert.registered e1 failed', 'expert.registered e1', 'expert.changed e1']);

    // On its last attempt a retry becomes a dead letter (QueueConsumer): it does not come back, nothing waits for it.
    failNext = true;
    const last = serializeUplink(about('e3'));
    expect(await handler(attempt(last, 3))).toEqual({ retry: 'system_not_joined' });
    expect(await handler(received(serializeUplink(about('e3', 'expert.changed'))))).toBe('accept');
  });

  it('times the handling from when its turn came, not while it waited behind another', async () => {
    const handler = uplinkMessageHandler(
      {
        handleUplink: async (e) => {
          // The registration hangs; the change takes 10 ms of its own.
          await new Promise((r) => (e.type === 'expert.registered' ? undefined : setTimeout(r, 10)));
          return { outcome: 'applied' };
        },
      },
      {},
      { handlerTimeoutMs: 100, maxAttempts: 1 },
    );
    const registration = handler(received(serializeUplink(about('e1'))));
    const change = handler(received(serializeUplink(about('e1', 'expert.changed'))));
    expect(await registration).toEqual({ retry: 'handler timed out after 100 ms' });
    // The change waited 100 ms for its turn, and is applied: its own run took 10 ms.
    expect(await change).toBe('accept');
  });

  it('a batch refused because its join request is not in yet lets the request behind it go first, and is imported when it comes again', async () => {
    let joining = false;
    const log: string[] = [];
    const handler = uplinkMessageHandler(
      {
        handleUplink: async (e) => {
          if (e.type === 'experts.batch' && !joining) {
            log.push('batch refused');
            throw new ConflictError('system_not_joining', 'no join request yet');
          }
          if (e.type === 'system.join.requested') joining = true;
          log.push(e.type);
          return { outcome: 'applied' };
        },
      },
      {},
      { maxAttempts: 5 },
    );
    const join = { ...registered(), id: randomUUID(), type: 'system.join.requested', payload: { expectedBatches: 1, expectedExperts: 1 } } as unknown as UplinkEnvelope;
    const batch = { ...registered(), id: randomUUID(), type: 'experts.batch', payload: { batchIndex: 0, batchCount: 1, experts: [{ localExpertId: 'x1', ...(registered().payload as { profile: object }).profile }] } } as unknown as UplinkEnvelope;
    const first = handler(received(serializeUplink(batch)));
    const request = handler(received(serializeUplink(join)));
    expect(await first).toEqual({ retry: 'system_not_joining' });
    expect(await Promise.race([request, new Promise((r) => setTimeout(() => r('waits behind the batch'), 1000))])).toBe('accept');
    expect(await handler(attempt(serializeUplink(batch), 2))).toBe('accept');
    expect(log).toEqual(['batch refused', 'system.join.requested', 'experts.batch']);
  });

  it('tells the consumer while a message waits for its turn (it then holds no credit slot)', async () => {
    const release: Array<() => void> = [];
    const handler = uplinkMessageHandler({ handleUplink: async () => (await new Promise<void>((r) => release.push(r)), { outcome: 'applied' }) });
    const told: string[] = [];
    const withWaiting = (body: string, name: string): ReceivedMessage => ({ ...received(body), waiting: (yes) => void told.push(`${name} ${yes}`) });
    const first = handler(withWaiting(serializeUplink(about('e1')), 'first'));
    const second = handler(withWaiting(serializeUplink(about('e1', 'expert.changed')), 'second'));
    while (release.length < 1) await new Promise((r) => setImmediate(r));
    expect(told).toEqual(['second true']);
    release.shift()!();
    while (release.length < 1) await new Promise((r) => setImmediate(r));
    expect(told).toEqual(['second true', 'second false']);
    release.shift()!();
    expect(await Promise.all([first, second])).toEqual(['accept', 'accept']);
  });

  it('keys a message by what it is about', () => {
    expect(uplinkOrderKeys(about('e1'))).toEqual(['expert/city-a:e1']);
    const batch = { ...registered(), type: 'experts.batch', payload: { batchIndex: 0, batchCount: 1, experts: [{ localExpertId: 'a' }, { localExpertId: 'b' }] } } as unknown as UplinkEnvelope;
    // A batch is about its experts and its system's join: one system's batches are handled one at a time.
    expect(uplinkOrderKeys(batch)).toEqual(['system/city-a', 'expert/city-a:a', 'expert/city-a:b']);
    // The AMQP group-id senders set: the one key; a batch's system (its batches then reach one hub process).
    expect(uplinkGroupId(about('e1'))).toBe('expert/city-a:e1');
    expect(uplinkGroupId(batch)).toBe('system/city-a');
    expect(uplinkOrderKeys({ ...registered(), type: 'system.join.requested', payload: { expectedBatches: 0, expectedExperts: 0 } } as UplinkEnvelope)).toEqual(['system/city-a']);
    expect(uplinkOrderKeys({ ...registered(), type: 'consultation.accept', payload: { consultationId: 'k1', expertId: 'city-b:x' } } as never)).toEqual(['consultation/k1']);
  });
});

describe('dead letter tagging and replay copies', () => {
  it('gives each dead letter copy a selectable id and the envelope id read from the body', () => {
    const env = registered();
    const tagged = tagDeadLetter({ body: serializeUplink(env), application_properties: { [DLQ_REASON]: 'unknown_system' } }, () => 'dlq-1');
    expect(tagged.application_properties).toEqual({ [DLQ_REASON]: 'unknown_system', [DLQ_ID]: 'dlq-1', messageId: env.id });
    expect(tagDeadLetter({ body: 'garbage' }, () => 'dlq-2').application_properties).toEqual({ [DLQ_ID]: 'dlq-2' });
    expect(tagDeadLetter({ body: '{}', application_properties: { messageId: 'given' } }, () => 'd').application_properties!.messageId).toBe('given');
    expect(envelopeIdOf(JSON.stringify({ id: "x' OR 1=1" }))).toBeUndefined();
  });

  it('reads binary ids and reasons as their text when they are UTF-8 (so they are checked as text), else as hex', () => {
    const read = toDeadLetter({ body: 'x', message_id: Buffer.from([0xff, 0xfe]), application_properties: { [DLQ_REASON]: Buffer.from('bad: 251248-1234'), systemId: Buffer.from('city-a') } } as unknown as Message);
    expect({ reason: read.reason, systemId: read.systemId, brokerMessageId: read.brokerMessageId }).toEqual({ reason: 'bad: 251248-1234', systemId: 'city-a', brokerMessageId: 'fffe' });
  });

  // A sender writing to the dead letter queue itself sets these as it likes: a count of 400 digits was read as
  // Infinity, which GET /dead-letters answered as null (its document says an integer), and rts dlq list then took the
  // whole list for no hub's answer (exit 5): the operator could list nothing until that message was gone.
  it('reads a count that is no whole number it can hold (too long, a fraction) as none', () => {
    const huge = '9'.repeat(400);
    for (const [attempts, count] of [[huge, huge], [1.5, 2.5], ['12345678901234567890', '-1']] as const) {
      const read = toDeadLetter({ body: 'x', message_id: 'm-1', application_properties: { [DLQ_ATTEMPTS]: attempts, [REPLAY_COUNT]: count } } as unknown as Message);
      expect({ attempts, count, read: { attempts: read.attempts, replayCount: read.replayCount } }).toEqual({ attempts, count, read: { attempts: null, replayCount: 0 } });
      expect(DeadLetterSummary.safeParse(JSON.parse(JSON.stringify(deadLetterSummary(read)))).success).toBe(true);
    }
    expect(toDeadLetter({ body: 'x', application_properties: { [DLQ_ATTEMPTS]: '3', [REPLAY_COUNT]: 2 } } as unknown as Message)).toMatchObject({ attempts: 3, replayCount: 2 });
  });

  it('reads a dead letter for operators and builds the replay copy without the x-dlq-* properties', () => {
    const env = registered();
    const message: Message = {
      body: serializeUplink(env),
      message_id: 'broker-1',
      application_properties: { messageId: env.id, [DLQ_ID]: 'dlq-1', [DLQ_REASON]: 'unknown_system', [DLQ_SOURCE_QUEUE]: 'rts.uplink', [DLQ_ATTEMPTS]: 1, [DLQ_AT]: '2024-05-01T10:00:00.000Z' },
    };
    expect(toDeadLetter(message)).toMatchObject({
      id: 'dlq-1',
      deadLetterId: 'dlq-1',
      envelopeId: env.id,
      brokerMessageId: 'broker-1',
      type: 'expert.registered',
      systemId: 'city-a',
      reason: 'unknown_system',
      sourceQueue: 'rts.uplink',
      attempts: 1,
      replayCount: 0,
    });
    const copy = replayCopy(message);
    // x-replay-count as an AMQP int (rhea's plain number would be a uint Java JMS cannot read)
    expect(copy.application_properties).toEqual({ messageId: env.id, [REPLAYED_FROM_DLQ]: true, [REPLAY_COUNT]: types.wrap_int(1) });
    expect(copy.body).toBe(message.body);
    expect(copy.durable).toBe(true);
    expect(replayCopy({ ...message, application_properties: { ...message.application_properties, [REPLAY_COUNT]: 2 } }).application_properties![REPLAY_COUNT]).toEqual(types.wrap_int(3));
    expect(selectorFor({ property: 'messageId', value: "a'b" })).toBe("rts_envelope_id = 'a''b' OR (rts_envelope_id IS NULL AND messageId = 'a''b')");
  });

  it("selects a sender's message id as ActiveMQ holds it (JMSMessageID)", () => {
    expect(selectorFor({ property: 'brokerMessageId', value: 'abc-def' })).toBe("JMSMessageID = 'ID:abc-def'");
    expect(selectorFor({ property: 'brokerMessageId', value: 'ID:host-1:1:1:1:1' })).toBe("JMSMessageID = 'ID:host-1:1:1:1:1'");
    expect(selectorFor({ property: 'brokerMessageId', value: '42' })).toBe("JMSMessageID IN ('ID:42', 'ID:AMQP_ULONG:42')");
    expect(selectorFor({ property: 'brokerMessageId', value: "x'y" })).toBe("JMSMessageID = 'ID:x''y'");
    expect(() => selectorFor({ property: 'contentId', value: 'c-abc' })).toThrow(/no selector/);
  });

  it('gives a message without ids a content id of letters, the same for the same body and properties in any order', () => {
    const a = contentIdOf('{"x":1}', { b: 2, a: 'one' });
    expect(a).toMatch(/^c-[a-p]{24}$/);
    expect(contentIdOf('{"x":1}', { a: 'one', b: 2 })).toBe(a);
    expect(contentIdOf('{"x":2}', { a: 'one', b: 2 })).not.toBe(a);
    expect(contentIdOf('{"x":1}', { a: 'one', b: 3 })).not.toBe(a);
    expect(contentIdOf('{"x":1}', { a: 'one', b: 2n })).not.toBe(a);
    const none = toDeadLetter({ body: 'garbage' });
    expect(none).toMatchObject({ id: none.contentId, deadLetterId: null, envelopeId: null, brokerMessageId: null });
    // The first id of the addressable form, else the content id.
    expect(toDeadLetter({ body: 'g', message_id: 'has space' }).id).toMatch(/^c-/);
    expect(toDeadLetter({ body: 'g', message_id: 'm-1' }).id).toBe('m-1');
    expect(toDeadLetter({ body: 'g', message_id: 'm-1', application_properties: { rts_dlq_id: 'bad id' } }).id).toBe('m-1');
  });
});

describe('DeadLetterService', () => {
  const clock = { now: () => DateTime.fromISO('2024-05-01T10:00:00Z', { zone: 'utc' }) };
  const ids = { uuid: () => randomUUID() };
  const letter = (over: Partial<DeadLetter> = {}): DeadLetter => withEnvelopeProperty({
    id: 'dlq-1',
    deadLetterId: 'dlq-1',
    envelopeId: 'env-1',
    brokerMessageId: null,
    contentId: 'c-aaaaaaaaaaaaaaaaaaaaaaaa',
    type: 'expert.registered',
    systemId: 'city-a',
    correlationId: null,
    reason: 'unknown_system',
    sourceQueue: 'rts.uplink',
    attempts: 1,
    deadLetteredAt: null,
    replayCount: 0,
    body: '{}',
    applicationProperties: {},
    ...over,
  });
  /** As the adapter reads a sender's message: the envelope id from its `messageId` property (unless a test says otherwise). */
  function withEnvelopeProperty(d: DeadLetter): DeadLetter {
    return 'messageId' in d.applicationProperties || d.envelopeId === null ? d : { ...d, applicationProperties: { ...d.applicationProperties, messageId: d.envelopeId } };
  }
  const uplinkOnly: ReplayTargets = { resolve: async (q) => (q === 'rts.uplink' ? { kind: 'uplink' } : null) };
  const selected = (l: DeadLetter, selection: ReplaySelection): boolean =>
    ({ rts_dlq_id: l.deadLetterId, messageId: l.envelopeId, brokerMessageId: l.brokerMessageId, contentId: l.contentId })[selection.property] === selection.value;
  class FakeQueue implements DeadLetterQueue {
    moves: Array<{ selection: ReplaySelection; sourceQueue: string }> = [];
    constructor(public letters: DeadLetter[]) {}
    async browse(limit: number) {
      return this.letters.slice(0, limit);
    }
    async moveBack(selection: ReplaySelection, sourceQueue: string) {
      this.moves.push({ selection, sourceQueue });
      const moved = this.letters.filter((l) => selected(l, selection));
      this.letters = this.letters.filter((l) => !moved.includes(l));
      return moved;
    }
    removals: ReplaySelection[] = [];
    async remove(selection: ReplaySelection, _max: number, record: (found: readonly DeadLetter[]) => Promise<void>) {
      this.removals.push(selection);
      const found = this.letters.filter((l) => selected(l, selection));
      if (found.length === 0) return [];
      await record(found); // throws: they stay
      this.letters = this.letters.filter((l) => !found.includes(l));
      return found;
    }
  }

  it('answers service_unavailable without a broker', async () => {
    const service = new DeadLetterService({ queue: null, store: new InMemoryEventStore(), clock, ids, replayTargets: uplinkOnly });
    await expect(service.list()).rejects.toBeInstanceOf(UnavailableError);
    await expect(service.replay('x', { by: 'op' })).rejects.toMatchObject({ code: 'service_unavailable', kind: 'unavailable' });
  });

  it('finds a dead letter by its id or its envelope id, replays it to its source and records the replay', async () => {
    const ENV1 = '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e01';
    const store = new InMemoryEventStore();
    const queue = new FakeQueue([letter({ envelopeId: ENV1 }), letter({ id: 'dlq-2', deadLetterId: 'dlq-2', envelopeId: 'env-2' })]);
    const service = new DeadLetterService({ queue, store, clock, ids, replayTargets: uplinkOnly });
    expect((await service.get('env-2')).deadLetterId).toBe('dlq-2');
    await expect(service.get('nope')).rejects.toMatchObject({ code: 'dead_letter_not_found' });

    const result = await service.replay('dlq-1', { by: 'alice', reason: 'system registered' });
    expect(queue.moves).toEqual([{ selection: { property: 'rts_dlq_id', value: 'dlq-1' }, sourceQueue: 'rts.uplink' }]);
    expect(result).toMatchObject({ moved: 1, sourceQueue: 'rts.uplink', streamName: `dead-letter-${ENV1}` });
    expect(await service.replays(ENV1)).toEqual([
      // Ids that are no UUID (the hub's are) are not stored: they could be anything a sender wrote.
      { deadLetterId: null, envelopeId: ENV1, at: '2024-05-01T10:00:00.000Z', by: 'alice', reason: 'system registered', sourceQueue: 'rts.uplink', deadLetterReason: 'unknown_system', attempts: 1, replayCount: 1, moved: 1, note: null },
    ]);
    // By envelope id: every copy of that message.
    await service.replay('env-2', { by: 'bob' });
    expect(queue.moves[1]!.selection).toEqual({ property: 'messageId', value: 'env-2' });
    await expect(service.replay('dlq-1', { by: 'alice' })).rejects.toMatchObject({ code: 'dead_letter_not_found' });
  });

  it("never takes a sender's messageId that is no UUID into a stream name or a replay's event (one held a CPR number)", async () => {
    const store = new InMemoryEventStore();
    const queue = new FakeQueue([letter({ id: '251248-1234', deadLetterId: null, envelopeId: '251248-1234' })]);
    const service = new DeadLetterService({ queue, store, clock, ids, replayTargets: uplinkOnly });
    const result = await service.replay('251248-1234', { by: 'op' });
    expect(result.streamName).toMatch(/^dead-letter-h[0-9a-f]{32}$/);
    expect(result.event).toMatchObject({ deadLetterId: null, envelopeId: null });
    const all = await store.readAll({ after: 0n, maxCount: 100 });
    expect(all).toHaveLength(1);
    expect(JSON.stringify(all.map((e) => ({ stream: e.streamName, data: e.data, metadata: e.metadata })))).not.toContain('251248');
    expect(await service.replays('251248-1234')).toHaveLength(1); // found again by the id given
  });

  // A system's broker account may send to the DLQ (client-side dead-lettering), so x-dlq-source-queue is whatever
  // that system wrote: a replay must not carry it, with the hub's account, to a queue the system may not write to.
  it('replays only to the uplink queue or a registered system\'s downlink queue; anything else stays on the DLQ', async () => {
    const store = new InMemoryEventStore();
    const forged = (id: string, sourceQueue: string) => letter({ id, deadLetterId: id, envelopeId: `env-${id}`, sourceQueue, reason: 'forged' });
    const queue = new FakeQueue([
      forged('up', 'rts.uplink'),
      forged('down', 'rts.downlink.mianyang'),
      forged('secret', 'rts.secret.queue'),
      forged('ghost', 'rts.downlink.ghost'),
      forged('dlq', 'rts.dlq'),
      forged('prefix', 'rts.downlink.'),
    ]);
    const directory = createDirectoryModule({ store, clock, ids, logger: { warn: () => undefined, error: () => undefined } });
    await directory.service.registerSystem({ systemId: 'mianyang', name: 'Mianyang', area: 'Sichuan' });
    const replayTargets = hubReplayTargets({ uplinkQueue: 'rts.uplink', systems: directory.readModel, catchUp: () => directory.projector.catchUp() });
    const service = new DeadLetterService({ queue, store, clock, ids, replayTargets });
    for (const id of ['secret', 'ghost', 'dlq', 'prefix']) {
      await expect(service.replay(id, { by: 'alice', reason: 'looks fixed' })).rejects.toMatchObject({ code: 'replay_target_refused', kind: 'validation' });
      expect(await service.replays(`env-${id}`)).toEqual([]);
    }
    expect(queue.moves).toEqual([]);
    expect(queue.letters.map((l) => l.id)).toEqual(['up', 'down', 'secret', 'ghost', 'dlq', 'prefix']);
    expect(await service.replay('up', { by: 'alice' })).toMatchObject({ moved: 1, sourceQueue: 'rts.uplink' });
    expect(await service.replay('down', { by: 'alice' })).toMatchObject({ moved: 1, sourceQueue: 'rts.downlink.mianyang' });
    expect(queue.moves.map((m) => m.sourceQueue)).toEqual(['rts.uplink', 'rts.downlink.mianyang']);
  });

  describe('discard', () => {
    const ENV = '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e02';
    const COPY_A = '5d0c7a0e-2b1f-4c8e-8a7d-0e1f2a3b4c01';
    const COPY_B = '5d0c7a0e-2b1f-4c8e-8a7d-0e1f2a3b4c02';
    const copies = () => [
      letter({ id: COPY_A, deadLetterId: COPY_A, envelopeId: ENV, body: '{"secret":"body text"}' }),
      letter({ id: COPY_B, deadLetterId: COPY_B, envelopeId: ENV, body: '{"secret":"body text"}' }),
      letter({ id: 'other', deadLetterId: 'other', envelopeId: 'env-other' }),
    ];

    it('takes the copy off the queue, records DeadLetterDiscarded in the replays\' stream without the body, and a link in the copy\'s own', async () => {
      const store = new InMemoryEventStore();
      const queue = new FakeQueue(copies());
      const service = new DeadLetterService({ queue, store, clock, ids, replayTargets: uplinkOnly });
      const result = await service.discard(COPY_A, { by: 'ops-7', reason: 'a duplicate' });
      expect(queue.removals).toEqual([{ property: 'rts_dlq_id', value: COPY_A }]);
      expect(queue.letters.map((l) => l.id)).toEqual([COPY_B, 'other']);
      expect(result).toMatchObject({ removed: 1, streamName: `dead-letter-${ENV}` });
      expect(result.event).toEqual({
        deadLetterId: COPY_A,
        envelopeId: ENV,
        deadLetterIds: [COPY_A],
        at: '2024-05-01T10:00:00.000Z',
        by: 'ops-7',
        reason: 'a duplicate',
        sourceQueue: 'rts.uplink',
        deadLetterReason: 'unknown_system',
        attempts: 1,
        replayCount: 0,
        removed: 1,
      });
      const all = await store.readAll({ after: 0n, maxCount: 100 });
      expect(all.map((e) => [e.streamName, e.type])).toEqual([
        [`dead-letter-${COPY_A}`, 'DeadLetterDiscardLinked'],
        [`dead-letter-${ENV}`, 'DeadLetterDiscarded'],
      ]);
      expect(JSON.stringify(all.map((e) => ({ stream: e.streamName, data: e.data, metadata: e.metadata })))).not.toContain('body text');
      expect((await service.history(ENV)).discards).toEqual([result.event]);
    });

    it('answers a discarded id with DeadLetterDiscardedError (its own id or the envelope id), while another copy stays found', async () => {
      const service = new DeadLetterService({ queue: new FakeQueue(copies()), store: new InMemoryEventStore(), clock, ids, replayTargets: uplinkOnly });
      await service.discard(COPY_A, { by: 'ops-7', reason: 'a duplicate' });
      for (const again of [() => service.discard(COPY_A, { by: 'ops-8', reason: 'again' }), () => service.get(COPY_A), () => service.replay(COPY_A, { by: 'ops-8' })]) {
        const error = await again().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(DeadLetterDiscardedError);
        expect(error).toMatchObject({ code: 'dead_letter_discarded', kind: 'not_found', record: { by: 'ops-7', reason: 'a duplicate', recordedIn: `dead-letter-${ENV}` } });
      }
      // The envelope's other copy is still there: the envelope id finds it.
      expect((await service.get(ENV)).deadLetterId).toBe(COPY_B);
      // By envelope id: every copy left; then the envelope id itself is a discarded id.
      expect(await service.discard(ENV, { by: 'ops-7', reason: 'all of it' })).toMatchObject({ removed: 1, event: { deadLetterIds: [COPY_B] } });
      await expect(service.get(ENV)).rejects.toMatchObject({ code: 'dead_letter_discarded', record: { reason: 'all of it' } });
      await expect(service.get(COPY_B)).rejects.toMatchObject({ code: 'dead_letter_discarded', record: { reason: 'all of it' } });
      await expect(service.get('never-there')).rejects.toMatchObject({ code: 'dead_letter_not_found' });
    });

    it('leaves the message on the queue when the record cannot be stored', async () => {
      const store = new InMemoryEventStore();
      const failing = Object.create(store) as InMemoryEventStore;
      failing.appendToStream = async () => Promise.reject(new UnavailableError('storage_unavailable', 'disk full'));
      const queue = new FakeQueue(copies());
      const service = new DeadLetterService({ queue, store: failing, clock, ids, replayTargets: uplinkOnly });
      await expect(service.discard(COPY_A, { by: 'ops-7', reason: 'x' })).rejects.toMatchObject({ code: 'storage_unavailable' });
      expect(queue.letters).toHaveLength(3);
    });

    it('answers dead_letter_taken when another request took it between the look-up and the take', async () => {
      const queue = new FakeQueue(copies());
      const service = new DeadLetterService({ queue, store: new InMemoryEventStore(), clock, ids, replayTargets: uplinkOnly });
      // The browse still sees it; the take finds nothing (another hub's replay got it).
      queue.browse = async () => copies();
      queue.letters = [];
      await expect(service.discard(COPY_A, { by: 'ops-7', reason: 'x' })).rejects.toMatchObject({ code: 'dead_letter_taken', kind: 'conflict' });
      await expect(service.replay(COPY_A, { by: 'ops-7' })).rejects.toMatchObject({ code: 'dead_letter_taken', kind: 'conflict' });
    });

    it('keeps no sender value that could hold a CPR number, and needs no source queue', async () => {
      const store = new InMemoryEventStore();
      const queue = new FakeQueue([letter({ id: '251248-1234', deadLetterId: null, envelopeId: '251248-1234', sourceQueue: 'rts.251248-1234', reason: 'bad_schema: 2512481234' }), letter({ id: 'nq', deadLetterId: 'nq', sourceQueue: null })]);
      const service = new DeadLetterService({ queue, store, clock, ids, replayTargets: uplinkOnly });
      const result = await service.discard('251248-1234', { by: 'op', reason: 'patient data' });
      expect(result.streamName).toMatch(/^dead-letter-h[0-9a-f]{32}$/);
      expect(result.event).toMatchObject({ deadLetterId: null, envelopeId: null, deadLetterIds: [], sourceQueue: null, deadLetterReason: null });
      const all = await store.readAll({ after: 0n, maxCount: 100 });
      expect(JSON.stringify(all.map((e) => ({ stream: e.streamName, data: e.data, metadata: e.metadata })))).not.toMatch(/251248|2512481234/);
      await expect(service.get('251248-1234')).rejects.toMatchObject({ code: 'dead_letter_discarded' });
      expect(await service.discard('nq', { by: 'op', reason: 'garbage' })).toMatchObject({ removed: 1, event: { sourceQueue: null } });
    });
  });

  it('lists the copies of one dead letter (the same rts_dlq_id and body: a copy sent again after a lost accept) as one, the oldest, and pages past them', async () => {
    const A = '0b9f6f5e-3c1a-8d8e-9f4b-1a2b3c4d5e0a';
    const B = '0b9f6f5e-3c1a-8d8e-9f4b-1a2b3c4d5e0b';
    const first = letter({ id: A, deadLetterId: A, envelopeId: 'env-a', body: '{"id":"env-a"}', reason: 'unknown_system' });
    const again = letter({ id: A, deadLetterId: A, envelopeId: 'env-a', body: '{"id":"env-a"}', reason: 'max attempts exceeded' });
    // Another body under the same id is not the same dead letter (anyone may write to the dead letter queue): shown.
    const other = letter({ id: A, deadLetterId: A, envelopeId: 'env-x', body: '{"id":"env-x"}' });
    const next = letter({ id: B, deadLetterId: B, envelopeId: 'env-b', body: '{"id":"env-b"}' });
    const service = new DeadLetterService({ queue: new FakeQueue([first, again, again, other, next]), store: new InMemoryEventStore(), clock, ids, replayTargets: uplinkOnly });
    expect(await service.listPage(2)).toEqual({ items: [first, other], more: true });
    expect(await service.listPage(3)).toEqual({ items: [first, other, next], more: false });
    expect(await service.list(10)).toEqual([first, other, next]);
    expect((await service.get(A)).reason).toBe('unknown_system');

    // Discarded, both copies go (the selector takes them), and the record names the dead letter once.
    const store = new InMemoryEventStore();
    const queue = new FakeQueue([first, again, next]);
    const discarding = new DeadLetterService({ queue, store, clock, ids, replayTargets: uplinkOnly });
    const result = await discarding.discard(A, { by: 'op', reason: 'sent twice by a lost accept' });
    expect(result.event.deadLetterIds).toEqual([A]);
    expect(queue.letters).toEqual([next]);
  });

  it('refuses a dead letter without a source queue', async () => {
    const service = new DeadLetterService({ queue: new FakeQueue([letter({ sourceQueue: null })]), store: new InMemoryEventStore(), clock, ids, replayTargets: uplinkOnly });
    await expect(service.replay('dlq-1', { by: 'op' })).rejects.toMatchObject({ code: 'dead_letter_without_source' });
  });

  it("takes a dead letter with neither of the hub's ids by its sender's message id, every copy of it, and records it under that id", async () => {
    const store = new InMemoryEventStore();
    const queue = new FakeQueue([
      letter({ id: 'b-1', deadLetterId: null, envelopeId: null, brokerMessageId: 'b-1' }),
      letter({ id: 'b-2', deadLetterId: null, envelopeId: null, brokerMessageId: 'b-2' }),
      letter({ id: 'b-1', deadLetterId: null, envelopeId: null, brokerMessageId: 'b-1', body: '{"again":1}' }),
    ]);
    const service = new DeadLetterService({ queue, store, clock, ids, replayTargets: uplinkOnly });
    const replayed = await service.replay('b-1', { by: 'op' });
    expect(queue.moves).toEqual([{ selection: { property: 'brokerMessageId', value: 'b-1' }, sourceQueue: 'rts.uplink' }]);
    expect(replayed).toMatchObject({ moved: 2, event: { deadLetterId: null, envelopeId: null } });
    expect(replayed.streamName).toMatch(/^dead-letter-h[0-9a-f]{32}$/);
    expect(await service.replays('b-1')).toHaveLength(1);
    const discarded = await service.discard('b-2', { by: 'op', reason: 'garbage' });
    expect(queue.removals).toEqual([{ property: 'brokerMessageId', value: 'b-2' }]);
    expect(discarded).toMatchObject({ removed: 1 });
    expect(queue.letters).toEqual([]);
    await expect(service.get('b-2')).rejects.toMatchObject({ code: 'dead_letter_discarded' });
  });

  it('takes a dead letter without any id of the form by its content id, and records it under that', async () => {
    const store = new InMemoryEventStore();
    const noId = (contentId: string) => letter({ id: contentId, deadLetterId: null, envelopeId: null, brokerMessageId: 'b 3 with spaces', contentId });
    const queue = new FakeQueue([noId('c-aaaaaaaaaaaaaaaaaaaaaaab'), noId('c-aaaaaaaaaaaaaaaaaaaaaaac')]);
    const service = new DeadLetterService({ queue, store, clock, ids, replayTargets: uplinkOnly });
    expect(await service.replay('c-aaaaaaaaaaaaaaaaaaaaaaab', { by: 'op' })).toMatchObject({ moved: 1 });
    expect(queue.moves.map((m) => m.selection)).toEqual([{ property: 'contentId', value: 'c-aaaaaaaaaaaaaaaaaaaaaaab' }]);
    expect(await service.discard('c-aaaaaaaaaaaaaaaaaaaaaaac', { by: 'op', reason: 'garbage' })).toMatchObject({ removed: 1 });
    expect(queue.removals).toEqual([{ property: 'contentId', value: 'c-aaaaaaaaaaaaaaaaaaaaaaac' }]);
    await expect(service.get('c-aaaaaaaaaaaaaaaaaaaaaaac')).rejects.toMatchObject({ code: 'dead_letter_discarded' });
    expect((await store.readAll({ after: 0n, maxCount: 10 })).every((e) => /^dead-letter-h[0-9a-f]{32}$/.test(e.streamName))).toBe(true);
  });

  it('takes a dead letter whose envelope id is only in its body by its own id, addressed by either', async () => {
    // No messageId property: no selector matches the envelope id, and a take by it answered dead_letter_taken.
    const inBody = (deadLetterId: string) => ({ ...letter({ id: deadLetterId, deadLetterId, envelopeId: `env-of-${deadLetterId}` }), applicationProperties: {} });
    const queue = new FakeQueue([inBody('dlq-7'), inBody('dlq-8')]);
    const service = new DeadLetterService({ queue, store: new InMemoryEventStore(), clock, ids, replayTargets: uplinkOnly });
    expect(await service.discard('env-of-dlq-7', { by: 'op', reason: 'x' })).toMatchObject({ removed: 1 });
    expect(await service.replay('env-of-dlq-8', { by: 'op' })).toMatchObject({ moved: 1 });
    expect(queue.removals).toEqual([{ property: 'rts_dlq_id', value: 'dlq-7' }]);
    expect(queue.moves.map((m) => m.selection)).toEqual([{ property: 'rts_dlq_id', value: 'dlq-8' }]);
  });

  it('answers dead_letter_not_selectable when no id of the form selects it, and takes nothing', async () => {
    // Not expected from the adapter (every message gets a content id); the service does not guess.
    const queue = new FakeQueue([letter({ id: 'b-3', deadLetterId: null, envelopeId: null, brokerMessageId: 'b 3 with spaces', contentId: '' })]);
    const service = new DeadLetterService({ queue, store: new InMemoryEventStore(), clock, ids, replayTargets: uplinkOnly });
    await expect(service.replay('b-3', { by: 'op' })).rejects.toMatchObject({ code: 'dead_letter_not_selectable' });
    await expect(service.discard('b-3', { by: 'op', reason: 'x' })).rejects.toMatchObject({ code: 'dead_letter_not_selectable' });
    expect(queue.moves).toEqual([]);
    expect(queue.removals).toEqual([]);
  });
});

describe('uplink messages that arrive too early', () => {
  it('retries refusals that only mean "too early" (the join request not applied yet)', async () => {
    const { ConflictError } = await import('../../src/domain/shared/errors');
    const early = uplinkMessageHandler({ handleUplink: async () => Promise.reject(new ConflictError('system_not_joining', 'x')) });
    expect(await early(received(serializeUplink(registered())))).toEqual({ retry: 'system_not_joining' });
  });

  it('retries a report handled before the accept sent just ahead of it, but dead-letters other refusals', async () => {
    const { ConflictError } = await import('../../src/domain/shared/errors');
    const refusing = (code: string) => uplinkMessageHandler({ handleUplink: async () => Promise.reject(new ConflictError(code, 'x')) });
    expect(await refusing('consultation_not_accepted')(received(serializeUplink(registered())))).toEqual({ retry: 'consultation_not_accepted' });
    expect(await refusing('report_already_issued')(received(serializeUplink(registered())))).toEqual({ deadLetter: expect.stringContaining('report_already_issued') });
  });

  it("logs a consultation message with the consultation's correlation id, not the one its envelope carries", async () => {
    const { ConflictError } = await import('../../src/domain/shared/errors');
    const lines: Record<string, unknown>[] = [];
    const logger = { info: (fields: object) => void lines.push({ ...fields, level: 'info' }), warn: (fields: object) => void lines.push({ ...fields, level: 'warn' }) };
    const consultationId = '11111111-2222-4333-8444-555555555555';
    let refuse = false;
    const consultations = {
      handleUplink: async () => (refuse ? Promise.reject(new ConflictError('offer_expired', 'x')) : { outcome: 'applied' }),
      correlationIdOf: async (id: string) => (id === consultationId ? 'corr-of-the-consultation' : null),
    };
    const handler = uplinkMessageHandler({ handleUplink: async () => ({ outcome: 'applied' }) }, { consultations, logger });
    const accept = () => ({ ...registered('chengdu'), id: randomUUID(), type: 'consultation.accept', correlationId: 'corr-of-this-envelope', payload: { consultationId, expertId: 'chengdu:li' } }) as never;
    expect(await handler(received(JSON.stringify(accept())))).toBe('accept');
    refuse = true;
    expect(await handler(received(JSON.stringify(accept())))).toEqual({ deadLetter: expect.stringContaining('offer_expired') });
    expect(lines.map((l) => [l.level, l.correlationId])).toEqual([['info', 'corr-of-the-consultation'], ['warn', 'corr-of-the-consultation']]);
    // Each line names the consultation, and the handled one whether it changed anything.
    expect(lines.map((l) => l.consultationId)).toEqual([consultationId, consultationId]);
    expect(lines[0]).toMatchObject({ outcome: 'applied', type: 'consultation.accept' });
  });

  it("names a message in its retry and dead letter lines by the sender's ids, never one that may hold a CPR number", () => {
    const id = randomUUID();
    const props = (p: Record<string, unknown>, body: unknown = 'x') => ({ body, application_properties: p }) as never;
    expect(uplinkTraceOf(props({ messageId: id, type: 'expert.changed', systemId: 'chengdu', correlationId: 'corr-1', other: 'ignored' }))).toEqual({ id, type: 'expert.changed', systemId: 'chengdu', correlationId: 'corr-1' });
    // No property: the id of a plain JSON body; a JWE's is not readable, and nothing is made up.
    expect(uplinkTraceOf(props({}, JSON.stringify({ id })))).toEqual({ id });
    expect(uplinkTraceOf(props({}, 'eyJhbGciOi.x.y.z.w'))).toEqual({});
    // A sender's values are whatever it wrote: one that may hold a CPR number, or is no id, is left out.
    expect(uplinkTraceOf(props({ messageId: 'm-251248-1234', correlationId: '2512481234', systemId: 'a b', type: 'x'.repeat(101) }))).toEqual({});
  });
});
