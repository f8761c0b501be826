import { DateTime } from 'luxon';
import { UnavailableError } from '../../src/domain/shared/errors';
import { JoseError } from '../../src/adapters/crypto/jose-codec';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { InMemoryKeyStore } from '../../src/adapters/crypto/key-stores';
import { PatientCipher } from '../../src/adapters/crypto/patient-cipher';
import { AmqpHubOutbox, type OutboxSender } from '../../src/adapters/messaging/amqp-hub-outbox';
import { PlainHubCodec, type HubDownlinkEnvelope, type HubMessageCodec } from '../../src/adapters/messaging/hub-codec';
import { MetricsRegistry } from '../../src/adapters/metrics/registry';
import { heldDownlinkRecorder } from '../../src/adapters/metrics/hub-metrics';
import type { ConsultationDownlinkEnvelope } from '../../src/application/consultation/consultation-messages';
import { consultationDataKey } from '../../src/application/consultation/sealed-consultations';
import { HeldDownlinkReleaser } from '../../src/application/downlink/held-downlink-releaser';
import { DOWNLINK_HELD_RELEASED, DOWNLINK_MESSAGE_HELD, HeldDownlinks, heldDownlinkStream } from '../../src/application/downlink/held-downlinks';
import type { EventStore } from '../../src/application/ports/event-store';

// Downlink messages for a system without a valid encryption key are held in the store, not skipped (they were:
// a consultation report to such a system was lost for good), and sent in order once it has one.

const clock = { now: () => DateTime.fromISO('2026-11-23T09:00:00Z', { zone: 'utc' }) };
const CONSULTATION = '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e01';
const queueOf = (systemId: string) => `rts.downlink.${systemId}`;

let n = 0;
/** A consultation.cancelled envelope to `systemId`, with a fresh id (the contract's checks pass). */
const message = (systemId: string, id = `9e8d7c6b-5a49-5382-9170-${String(++n).padStart(12, '0')}`): ConsultationDownlinkEnvelope =>
  ({
    id,
    type: 'consultation.cancelled',
    version: 1,
    systemId,
    correlationId: CONSULTATION,
    time: '2026-11-23T09:35:00.030+08:00',
    payload: { consultationId: CONSULTATION, expertId: `${systemId}:li-7`, reason: 'Patient transferred', cancelledAt: '2026-11-23T01:35:00.030Z' },
  }) as ConsultationDownlinkEnvelope;

/** The hub's codec as message security makes it: encoding for a system without a valid key throws unknown_key. */
class KeyedCodec implements HubMessageCodec {
  readonly security = 'jose' as const;
  readonly withKey = new Set<string>();
  private readonly plain = new PlainHubCodec();
  decodeUplink = this.plain.decodeUplink.bind(this.plain);
  async encodeDownlink(envelope: HubDownlinkEnvelope) {
    if (!this.withKey.has(envelope.systemId)) throw new JoseError('unknown_key', `no valid encryption key is registered for ${envelope.systemId}`);
    return this.plain.encodeDownlink(envelope);
  }
}

/** What the broker accepted, in order, as `queue:envelope id` (and the bodies, as sent). */
type Broker = { accepted: string[]; bodies?: string[]; onSend?: (queue: string, id: string) => Promise<void> };

/** The key store the hub processes over one event store share (as they share one in a deployment), and its cipher. */
const ciphers = new WeakMap<EventStore, PatientCipher>();
const protectionOf = (store: EventStore): PatientCipher => {
  if (!ciphers.has(store)) ciphers.set(store, new PatientCipher({ keys: new InMemoryKeyStore() }));
  return ciphers.get(store)!;
};

/** One hub process over `store`: the outbox the publishers use, and the releaser beside them. */
const hubProcess = (store: EventStore, codec: KeyedCodec, broker: Broker, options: { recheckMs?: number } = {}) => {
  const logs: { fields: Record<string, unknown>; message: string }[] = [];
  const logger = { warn: (fields: object, message: string) => void logs.push({ fields: fields as Record<string, unknown>, message }), error: () => undefined, info: (fields: object, message: string) => void logs.push({ fields: fields as Record<string, unknown>, message }) };
  const metrics = new MetricsRegistry();
  const recorder = heldDownlinkRecorder(metrics);
  const held = new HeldDownlinks({ store, clock, logger, onHeld: recorder.held, onReleased: recorder.released, protection: protectionOf(store) } as ConstructorParameters<typeof HeldDownlinks>[0]);
  const sender: OutboxSender = {
    send: async (queue, m) => {
      await broker.onSend?.(queue, String(m.messageId));
      broker.accepted.push(`${queue}:${String(m.messageId)}`);
      broker.bodies?.push(String(m.body));
    },
  };
  const outbox = new AmqpHubOutbox(sender, codec, { error: () => undefined }, held);
  const releaser = new HeldDownlinkReleaser({ held, store, prepare: (q, e) => outbox.prepare(q, e), logger, recheckMs: options.recheckMs ?? 60_000, coalesceMs: 0, onPending: recorder.pending });
  const send = (m: ConsultationDownlinkEnvelope) => outbox.send(queueOf(m.systemId), m);
  return { held, outbox, releaser, send, logs, metrics };
};

const heldEvents = async (store: EventStore, systemId: string) => (await store.readStream(heldDownlinkStream(systemId))).events;
const at = (m: ConsultationDownlinkEnvelope) => `${queueOf(m.systemId)}:${m.id}`;

const setup = () => {
  const store = new InMemoryEventStore();
  const codec = new KeyedCodec();
  codec.withKey.add('chengdu');
  const broker: Broker = { accepted: [] };
  return { store, codec, broker, hub: hubProcess(store, codec, broker) };
};

it('holds a message for a system without a valid encryption key, durably, instead of skipping it', async () => {
  const { store, broker, hub } = setup();
  const m1 = message('mianyang');
  await hub.send(m1); // resolves: the publisher moves on
  expect(broker.accepted).toEqual([]);
  const events = await heldEvents(store, 'mianyang');
  expect(events.map((e) => e.type)).toEqual([DOWNLINK_MESSAGE_HELD]);
  expect(events[0]!.data).toMatchObject({ systemId: 'mianyang', queue: 'rts.downlink.mianyang', reason: 'no_encryption_key', envelope: { ...m1, payload: { ...m1.payload, reason: expect.stringMatching(/^rts-sealed:v1:/) } } });
  expect(hub.logs[0]).toEqual({ fields: expect.objectContaining({ id: m1.id, systemId: 'mianyang', reason: 'no_encryption_key' }), message: expect.stringContaining('held') });
  // Named by the ids a desk quotes too (README, "Tracing a consultation or a message").
  expect(hub.logs[0]!.fields).toMatchObject({ correlationId: m1.correlationId, consultationId: m1.payload.consultationId });
  // No patient data in the log line: ids, system, reason.
  expect(JSON.stringify(hub.logs)).not.toContain('Patient transferred');
  expect(hub.metrics.render()).toContain('rts_downlink_held_total{reason="no_encryption_key"} 1');
});

it("keeps a held consultation message's texts sealed under the consultation's key: its erasure reaches them, and the release sends none of them", async () => {
  // Held in clear, an offer's question and summary and a report's diagnosis stayed readable in the store (and every
  // backup) after the patient's or the consultation's erasure, and the release sent them to the system afterwards.
  const { store, codec, broker, hub } = setup();
  broker.bodies = [];
  const base = { version: 1, systemId: 'mianyang', correlationId: CONSULTATION, time: '2026-11-23T09:35:00.030+08:00' } as const;
  const offered = {
    ...base,
    id: '9e8d7c6b-5a49-5382-9170-00000000a001',
    type: 'consultation.offered',
    payload: {
      consultationId: CONSULTATION,
      expertId: 'mianyang:li-7',
      offerIndex: 0,
      offeredAt: '2026-11-23T01:35:00.030Z',
      expiresAt: '2026-11-24T01:35:00.030Z',
      applicantSystemId: 'chengdu',
      applicantClinician: 'Dr. Wang',
      clinicalQuestion: 'Suspected phaeochromocytoma?',
      summary: 'Paroxysmal hypertension, 58 years',
      attachments: [],
    },
  } as unknown as ConsultationDownlinkEnvelope;
  const report = {
    ...base,
    id: '9e8d7c6b-5a49-5382-9170-00000000a002',
    type: 'consultation.report',
    payload: { consultationId: CONSULTATION, expertId: 'chengdu:zhang-1', diagnosis: 'Essential hypertension', recommendations: 'Amlodipine 5 mg', issuedAt: '2026-11-23T01:35:00.030Z', attempt: 0 },
  } as unknown as ConsultationDownlinkEnvelope;
  const cancelled = message('mianyang'); // reason 'Patient transferred': the applicant's own words
  const expired = { ...message('mianyang'), payload: { ...message('mianyang').payload, reason: 'offer_expired: no answer before expiresAt; the case moved on (to the next candidate, or unassigned when none was left)' } } as ConsultationDownlinkEnvelope;
  for (const m of [offered, report, cancelled, expired]) await hub.send(m);
  const texts = ['Suspected phaeochromocytoma?', 'Paroxysmal hypertension, 58 years', 'Essential hypertension', 'Amlodipine 5 mg', 'Patient transferred'];
  const stored = JSON.stringify((await heldEvents(store, 'mianyang')).map((e) => e.data));
  for (const text of texts) expect(stored).not.toContain(text);
  expect(stored).toContain('offer_expired: no answer'); // the hub's own words stay as they are

  // Until the erasure, the release opens them: the messages go out as they would have.
  const before = await hub.held.unreleased('mianyang', 10);
  const openHeld = (envelope: unknown) => (hub.held as unknown as { openHeld(e: unknown): Promise<unknown> }).openHeld(envelope);
  expect(await Promise.all(before.messages.map((m) => openHeld(m.envelope)))).toEqual([offered, report, cancelled, expired]);

  // The consultation's content is erased (with its patient, or by id) before the system has a key.
  await protectionOf(store).erase(consultationDataKey(CONSULTATION));
  // A report resent after the erasure is held too (behind the others), with nothing left to keep: never sent.
  const resent = { ...report, id: '9e8d7c6b-5a49-5382-9170-00000000a003', payload: { ...report.payload, attempt: 1 } } as ConsultationDownlinkEnvelope;
  await hub.send(resent);
  expect(JSON.stringify((await heldEvents(store, 'mianyang')).map((e) => e.data))).not.toContain('Essential hypertension');
  codec.withKey.add('mianyang');
  await hub.releaser.catchUp();
  // No report; the offer and the cancel without their texts, as the consultation downlink sends them after an erasure.
  expect(broker.accepted).toEqual([at(offered), at(cancelled), at(expired)]);
  const sent = broker.bodies.join('\n');
  for (const text of texts) expect(sent).not.toContain(text);
  const [offer, cancel, expiry] = broker.bodies.map((b) => JSON.parse(b).payload);
  expect(offer).toMatchObject({ clinicalQuestion: '', summary: '', applicantClinician: 'Dr. Wang' });
  expect(cancel.reason).toBe('');
  expect(expiry.reason).toMatch(/^offer_expired: /);
  expect(hub.held.pendingCount()).toBe(0);
});

it('holds later messages to that system behind it (even once the key is there), and leaves other systems alone', async () => {
  const { store, codec, broker, hub } = setup();
  const m1 = message('mianyang');
  const m2 = message('mianyang');
  const other = message('chengdu');
  await hub.send(m1);
  codec.withKey.add('mianyang'); // registered, but m1 has not been sent yet: m2 must not overtake it
  await hub.send(m2);
  await hub.send(other);
  expect(broker.accepted).toEqual([at(other)]);
  expect((await heldEvents(store, 'mianyang')).map((e) => [e.data['envelope'] && (e.data['envelope'] as { id: string }).id, e.data['reason']])).toEqual([
    [m1.id, 'no_encryption_key'],
    [m2.id, 'behind_held'],
  ]);
  expect(await heldEvents(store, 'chengdu')).toEqual([]);
});

it('releases the held messages in order once the system has a key, then sends directly again', async () => {
  const { store, codec, broker, hub } = setup();
  const [m1, m2, m3] = [message('mianyang'), message('mianyang'), message('mianyang')];
  await hub.send(m1);
  await hub.send(m2);
  await hub.releaser.catchUp(); // still no key: nothing sent, nothing released
  expect(broker.accepted).toEqual([]);
  expect((await heldEvents(store, 'mianyang')).map((e) => e.type)).toEqual([DOWNLINK_MESSAGE_HELD, DOWNLINK_MESSAGE_HELD]);

  codec.withKey.add('mianyang');
  await hub.releaser.catchUp();
  expect(broker.accepted).toEqual([at(m1), at(m2)]);
  const events = await heldEvents(store, 'mianyang');
  expect(events.map((e) => e.type)).toEqual([DOWNLINK_MESSAGE_HELD, DOWNLINK_MESSAGE_HELD, DOWNLINK_HELD_RELEASED]);
  expect(events[2]!.data).toMatchObject({ systemId: 'mianyang', throughVersion: '1' });
  expect(hub.logs.at(-1)).toEqual({ fields: { systemId: 'mianyang', count: 2, throughVersion: '1' }, message: expect.stringContaining('released') });
  expect(hub.metrics.render()).toContain('rts_downlink_held_released_total 2');
  expect(hub.metrics.render()).toContain('rts_downlink_held_pending 0');

  await hub.send(m3);
  expect(broker.accepted).toEqual([at(m1), at(m2), at(m3)]);
  expect(await heldEvents(store, 'mianyang')).toHaveLength(3);
});

it('holds a resent message once (the publisher resends after a crash) and delivers it once', async () => {
  const { store, codec, broker, hub } = setup();
  const m1 = message('mianyang');
  const m2 = message('mianyang');
  await hub.send(m1);
  await hub.send(m2);
  await hub.send(m1); // resent from the publisher's checkpoint
  await hub.send(m2);
  expect(await heldEvents(store, 'mianyang')).toHaveLength(2);
  expect(hub.metrics.render()).toContain('rts_downlink_held_total{reason="behind_held"} 1');
  codec.withKey.add('mianyang');
  await hub.releaser.catchUp();
  expect(broker.accepted).toEqual([at(m1), at(m2)]);
  // A resend after the release is sent again (receivers dedupe by id), not held again.
  await hub.send(m2);
  expect(await heldEvents(store, 'mianyang')).toHaveLength(3);
});

it('finds the held messages again after a restart (new instances over the same store) and releases them', async () => {
  const { store, codec, broker, hub } = setup();
  const [m1, m2] = [message('mianyang'), message('mianyang')];
  await hub.send(m1);
  await hub.send(m2);
  codec.withKey.add('mianyang');
  const restarted = hubProcess(store, codec, broker);
  const m3 = message('mianyang');
  await restarted.send(m3); // the new process knows mianyang has held messages: m3 waits behind them
  expect(broker.accepted).toEqual([]);
  await restarted.releaser.catchUp();
  expect(broker.accepted).toEqual([at(m1), at(m2), at(m3)]);
});

it('encodes the messages to one system concurrently (the pipelined publisher), and still hands them to the broker in order', async () => {
  // Encoded one after another, a system's downlink was capped at 1 / (one encoding's latency): under a heavy uplink
  // the event loop stretched that, and the publisher fell behind while the uplink ran (bench/downlink-lag.js).
  const store = new InMemoryEventStore();
  let encoding = 0;
  let most = 0;
  class SlowCodec extends KeyedCodec {
    override async encodeDownlink(envelope: HubDownlinkEnvelope) {
      encoding += 1;
      most = Math.max(most, encoding);
      // The later message finishes first: the order must come from the chain, not from the encodings.
      await new Promise((r) => setTimeout(r, 5 * (10 - Number(envelope.id.slice(-2)) % 10)));
      encoding -= 1;
      return super.encodeDownlink(envelope);
    }
  }
  const codec = new SlowCodec();
  codec.withKey.add('chengdu');
  const broker: Broker = { accepted: [] };
  const hub = hubProcess(store, codec, broker);
  const ms = Array.from({ length: 6 }, (_, i) => message('chengdu', `9e8d7c6b-5a49-5382-9170-0000000000${String(i + 1).padStart(2, '0')}`));
  await Promise.all(ms.map((m) => hub.send(m)));
  expect(most).toBe(ms.length);
  expect(broker.accepted).toEqual(ms.map(at));
  expect(await heldEvents(store, 'chengdu')).toEqual([]);
});

it('encodes nothing ahead for a system known to have held messages: they are held behind, as before', async () => {
  const { store, codec, hub } = setup();
  await hub.send(message('mianyang')); // held: no key
  await hub.held.catchUp();
  const encode = jest.spyOn(codec, 'encodeDownlink');
  codec.withKey.add('mianyang');
  await Promise.all([hub.send(message('mianyang')), hub.send(message('mianyang'))]);
  expect(encode).not.toHaveBeenCalled();
  expect((await heldEvents(store, 'mianyang')).map((e) => e.data['reason'])).toEqual(['no_encryption_key', 'behind_held', 'behind_held']);
});

it('does not lose a message held while a release is under way (by another process): it is sent after the others', async () => {
  const { store, codec, broker, hub } = setup();
  const other = hubProcess(store, codec, broker);
  const [m1, m2, m3] = [message('mianyang'), message('mianyang'), message('mianyang')];
  await hub.send(m1);
  await hub.send(m2);
  codec.withKey.add('mianyang');
  // While the release sends m1, the other process's publisher sends m3: m1 and m2 are not released yet, so m3 is
  // held after them. The release's marker then finds the stream moved, reads again and sends m3 too.
  let once = false;
  broker.onSend = async (_queue, id) => {
    if (id !== m1.id || once) return;
    once = true;
    await other.send(m3);
  };
  await hub.releaser.catchUp();
  expect(broker.accepted).toEqual([at(m1), at(m2), at(m3)]);
  const events = await heldEvents(store, 'mianyang');
  expect(events.map((e) => e.type)).toEqual([DOWNLINK_MESSAGE_HELD, DOWNLINK_MESSAGE_HELD, DOWNLINK_MESSAGE_HELD, DOWNLINK_HELD_RELEASED]);
  expect(events[3]!.data['throughVersion']).toBe('2');
  // Both processes agree nothing is pending; the other one's next message goes straight out.
  const m4 = message('mianyang');
  await other.send(m4);
  expect(broker.accepted.at(-1)).toBe(at(m4));
});

it('releases in two processes at once without marking anything twice', async () => {
  const { store, codec, broker, hub } = setup();
  const other = hubProcess(store, codec, broker);
  const [m1, m2] = [message('mianyang'), message('mianyang')];
  await hub.send(m1);
  await hub.send(m2);
  codec.withKey.add('mianyang');
  await Promise.all([hub.releaser.catchUp(), other.releaser.catchUp()]);
  // Duplicates at worst (same ids: receivers dedupe), in order each, and one release marker.
  const distinct = [...new Set(broker.accepted)];
  expect(distinct).toEqual([at(m1), at(m2)]);
  expect((await heldEvents(store, 'mianyang')).filter((e) => e.type === DOWNLINK_HELD_RELEASED)).toHaveLength(1);
});

it('wakes on an append (a key registered) and on its timer (a key valid from now on, no event at all)', async () => {
  const { store, codec, broker } = setup();
  const byEvent = hubProcess(store, codec, broker, { recheckMs: 60_000 });
  const m1 = message('mianyang');
  await byEvent.send(m1);
  byEvent.releaser.start();
  try {
    await byEvent.releaser.catchUp();
    codec.withKey.add('mianyang');
    await store.appendToStream('system-keys-mianyang', [{ id: '2b0a6f8e-0c1d-4e2f-8a3b-4c5d6e7f8091', type: 'SystemKeyRegistered', data: { systemId: 'mianyang' } }]);
    await waitFor(() => broker.accepted.length === 1);
  } finally {
    await byEvent.releaser.stop();
  }

  const m2 = message('shenzhen');
  const byTimer = hubProcess(store, codec, broker, { recheckMs: 30 });
  await byTimer.send(m2);
  byTimer.releaser.start();
  try {
    await byTimer.releaser.catchUp();
    codec.withKey.add('shenzhen'); // its key's validFrom passed: nothing is appended
    await waitFor(() => broker.accepted.includes(at(m2)));
  } finally {
    await byTimer.releaser.stop();
  }
});

it('keeps skipping what can never be sent: a contract breach is not held; one held before is dropped at release', async () => {
  const { store, codec, broker, hub } = setup();
  const bad = { ...message('chengdu'), payload: { ...message('chengdu').payload, consultationId: '251248-1234' /* an old build's id that holds a CPR number: never sent */ } } as ConsultationDownlinkEnvelope;
  await hub.send(bad);
  expect(broker.accepted).toEqual([]);
  expect(await heldEvents(store, 'chengdu')).toEqual([]);

  // Held (no key yet) and only then found to break the contract: dropped, the ones behind it sent.
  const badHeld = { ...bad, systemId: 'mianyang', id: '9e8d7c6b-5a49-5382-9170-6f5e4d3c2bff' } as ConsultationDownlinkEnvelope;
  const good = message('mianyang');
  await hub.send(badHeld);
  await hub.send(good);
  codec.withKey.add('mianyang');
  await hub.releaser.catchUp();
  expect(broker.accepted).toEqual([at(good)]);
  expect(hub.held.pendingCount()).toBe(0);
});

it('retries a release the broker did not take, from the oldest unreleased message', async () => {
  const { codec, broker, hub } = setup();
  const [m1, m2] = [message('mianyang'), message('mianyang')];
  await hub.send(m1);
  await hub.send(m2);
  codec.withKey.add('mianyang');
  broker.onSend = async (_q, id) => {
    if (id === m2.id) throw new Error('disconnected');
  };
  await expect(hub.releaser.catchUp()).rejects.toThrow('disconnected');
  broker.onSend = undefined;
  await hub.releaser.catchUp();
  expect(broker.accepted).toEqual([at(m1), at(m1), at(m2)]); // m1 again (same id: the receiver dedupes), then m2
  expect(hub.held.pendingCount()).toBe(0);
});

const waitFor = async (condition: () => boolean, timeoutMs = 5000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

it("does not take a key store that fails for a moment at the release for the consultation's erasure: the report waits and goes out with its texts", async () => {
  // open() returns null for an erased key and throws when the key store cannot answer (PostgreSQL away, SQLite locked
  // past its busy timeout). Taken for an erasure, such a failure dropped a held report for good (marked released,
  // never sent) and sent an offer with '' as its question and summary.
  const { store, codec, broker, hub } = setup();
  broker.bodies = [];
  const report = {
    ...message('mianyang'),
    type: 'consultation.report',
    payload: { consultationId: CONSULTATION, expertId: 'chengdu:zhang-1', diagnosis: 'Essential hypertension', recommendations: 'Amlodipine 5 mg', issuedAt: '2026-11-23T01:35:00.030Z', attempt: 0 },
  } as unknown as ConsultationDownlinkEnvelope;
  await hub.send(report);
  const cipher = protectionOf(store);
  const open = cipher.open.bind(cipher);
  const isErased = cipher.isErased.bind(cipher);
  // PostgreSQL's pool throws its own errors (no RtsError kind); SQLite's store the same for a lock.
  let openFailures = 2;
  let storeCalls = 0;
  cipher.open = async (key, sealed, context) => {
    if (openFailures-- > 0) throw new Error('Connection terminated unexpectedly');
    return open(key, sealed, context);
  };
  cipher.isErased = async (key) => {
    if (++storeCalls === 2) throw new UnavailableError('storage_unavailable', 'the key store did not answer'); // asked after the first failed open
    return isErased(key);
  };
  codec.withKey.add('mianyang');
  await hub.releaser.catchUp().catch(() => undefined); // the pass fails: tried again on the next
  await hub.releaser.catchUp();
  expect(broker.accepted).toEqual([at(report)]);
  expect(JSON.parse(broker.bodies[0]!).payload).toMatchObject({ diagnosis: 'Essential hypertension', recommendations: 'Amlodipine 5 mg' });
});
