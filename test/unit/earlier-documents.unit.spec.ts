// Documents stored before effectiveTime carried its offset (builds to 2026-12-02 wrote `20261130233000`, this one
// `20261130233000+0000`) keep their bytes: they read back as before, and a retry of their upload or correction,
// rebuilt today in the new bytes, is the same reading (200, created false), not a conflicting one (409).
import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { DateTime } from 'luxon';
import { InMemoryKeyStore } from '../../src/adapters/crypto/key-stores';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { InMemoryRegistry } from '../../src/adapters/registry/in-memory-registry';
import { HmacPatientKeys } from '../../src/adapters/system/hmac-patient-keys';
import { EventStoreDocumentRepository } from '../../src/application/event-store-document-repository';
import { sha256Hex } from '../../src/application/ids';
import { Projector } from '../../src/application/projector';
import { buildDocument, TeleMedService } from '../../src/application/telemed';
import { XdsBackend } from '../../src/application/xds-backend';
import { buildContainer, TOKENS } from '../../src/bootstrap/container';
import { loadConfig } from '../../src/bootstrap/config';
import { parseHl7Observation, withoutEffectiveTimeOffset } from '../../src/domain/documents/hl7';
import { parseCpr } from '../../src/domain/monitoring/cpr';
import { createTeleObservation, type TeleObservation } from '../../src/domain/monitoring/tele-observation';
import { lastDays } from '../../src/domain/monitoring/time-interval';

const PATIENT = parseCpr('251248-1234');
const NOW = DateTime.utc().startOf('second');

/** 00:30 on the day in Copenhagen (winter time): 23:30 UTC the day before, the safety review's reading. */
const measuredAt = NOW.setZone('Europe/Copenhagen').startOf('day').minus({ days: 1 }).plus({ minutes: 30 }).toISO()!;
const reading = (systolic: number, diastolic = 70): TeleObservation => createTeleObservation({ patientId: PATIENT, systolic, diastolic, measuredAt }, NOW);

type Parts = { store: InMemoryEventStore; xds: XdsBackend; telemed: TeleMedService; projector: Projector };

/** The bytes an earlier build stored for a reading: effectiveTime without its +0000. */
const earlierBytesOf = (o: TeleObservation) => {
  const { document, metadata } = buildDocument(o);
  const earlier = withoutEffectiveTimeOffset(document);
  if (earlier === null) throw new Error('the builder wrote no +0000');
  expect(earlier).toContain('<effectiveTime value="');
  expect(earlier).not.toContain('+0000');
  return { document: earlier, metadata, summary: { systolic: o.systolic.value, diastolic: o.diastolic.value } };
};

/** What an earlier build did for an upload: the same calls, with the bytes it built. */
const uploadAsEarlierBuild = (xds: XdsBackend, o: TeleObservation, observationId?: string) => {
  const { document, metadata, summary } = earlierBytesOf(o);
  return xds.provideAndRegisterBuilt(metadata, document, { observationId, summary });
};

const correctAsEarlierBuild = (xds: XdsBackend, uniqueId: string, o: TeleObservation, correctionId?: string) => {
  const { document, metadata, summary } = earlierBytesOf(o);
  return xds.correctBuilt(uniqueId, metadata, document, { correctionId, summary });
};

const inClear = (): Parts => {
  const store = new InMemoryEventStore();
  const registry = new InMemoryRegistry();
  const projector = new Projector(store, registry);
  const xds = new XdsBackend({
    store,
    registry,
    projector,
    repositories: [new EventStoreDocumentRepository('2.25.42', store)],
    repositoryUniqueId: '2.25.42',
    patientKeys: new HmacPatientKeys(Buffer.alloc(32, 7)),
    clock: { now: () => NOW },
    ids: { uuid: () => randomUUID() },
  });
  return { store, xds, telemed: new TeleMedService(xds), projector };
};

/** The hub's own wiring: documents sealed under the patient's key, entries with keyed digests. */
const sealed = (): Parts => {
  const store = new InMemoryEventStore();
  const container = buildContainer(loadConfig({ RTS_PSEUDONYM_SECRET: '11'.repeat(32) }), pino({ level: 'silent' }), {
    store,
    registry: new InMemoryRegistry(),
    registryKind: 'memory',
    keys: new InMemoryKeyStore(),
  });
  return { store, xds: container.get<XdsBackend>(TOKENS.Xds), telemed: container.get<TeleMedService>(TOKENS.TeleMed), projector: container.get<Projector>(TOKENS.Projector) };
};

const eventsOf = async (store: InMemoryEventStore) => (await store.readAll({ after: 0n, maxCount: 10_000 })).filter((e) => e.type.startsWith('Document'));

describe.each([
  ['in clear', inClear],
  ['sealed (the hub)', sealed],
])('documents an earlier build stored without the offset (%s)', (_name, setup) => {
  it('read back with their own bytes, at the same instant, and the same after a registry rebuild', async () => {
    const { xds, telemed, projector } = setup();
    const o = reading(126);
    const { uniqueId } = await uploadAsEarlierBuild(xds, o, 'meter-7:0001');
    const stored = await xds.retrieveDocument(uniqueId);
    expect(stored.content).toBe(earlierBytesOf(o).document); // never rewritten
    expect(stored.entry.hash).toBe(sha256Hex(stored.content)); // the ETag of the bytes served
    expect(parseHl7Observation(stored.content).measuredAt).toBe(o.measuredAt);
    const expected = [{ uniqueId, patientId: PATIENT, systolic: o.systolic, diastolic: o.diastolic, measuredAt: o.measuredAt }];
    expect(await telemed.getObservationsFor(PATIENT, lastDays(3, NOW))).toEqual(expected);
    await projector.rebuild(); // the registry parses the stored bytes again
    expect(await telemed.getObservationsFor(PATIENT, lastDays(3, NOW))).toEqual(expected);
    expect((await xds.retrieveDocument(uniqueId)).entry.hash).toBe(sha256Hex(stored.content));
  });

  it('a retried upload, rebuilt in the new bytes: the same uniqueId, created false, nothing stored', async () => {
    const { store, xds, telemed } = setup();
    const o = reading(126);
    const first = await uploadAsEarlierBuild(xds, o, 'meter-7:0001');
    const before = await eventsOf(store);
    const again = await telemed.record(o, { observationId: 'meter-7:0001' });
    expect(again).toMatchObject({ uniqueId: first.uniqueId, created: false });
    expect(await eventsOf(store)).toHaveLength(before.length);
    expect((await xds.retrieveDocument(first.uniqueId)).content).toBe(earlierBytesOf(o).document);
    // Other values under that id are still another reading.
    await expect(telemed.record(reading(127), { observationId: 'meter-7:0001' })).rejects.toMatchObject({ code: 'observation_id_reused' });
  });

  it('a retried upload whose time was the hub\'s "now": the stored reading, as before', async () => {
    const { xds, telemed } = setup();
    const o = reading(126);
    const first = await uploadAsEarlierBuild(xds, o, 'meter-7:0002');
    const later = { ...o, measuredAt: NOW.toISO({ suppressMilliseconds: true })! };
    expect(await telemed.record(later, { observationId: 'meter-7:0002', measuredAtDefaulted: true })).toMatchObject({ uniqueId: first.uniqueId, created: false, measuredAt: o.measuredAt });
  });

  it.each([
    ['without a correctionId', undefined],
    ['with a correctionId', 'fix-1'],
  ])('a retried correction (%s), rebuilt in the new bytes: the same replacement, created false, nothing stored', async (_how, correctionId) => {
    const { store, xds, telemed } = setup();
    const { uniqueId } = await uploadAsEarlierBuild(xds, reading(126));
    const corrected = reading(128, 72);
    const first = await correctAsEarlierBuild(xds, uniqueId, corrected, correctionId);
    expect(first.created).toBe(true);
    const before = await eventsOf(store);
    const again = await telemed.correct(uniqueId, corrected, correctionId === undefined ? {} : { correctionId });
    expect(again).toMatchObject({ uniqueId: first.uniqueId, created: false });
    expect(await eventsOf(store)).toHaveLength(before.length);
    expect((await telemed.getObservationsFor(PATIENT, lastDays(3, NOW))).map((r) => [r.uniqueId, r.systolic.value])).toEqual([[first.uniqueId, 128]]);
    // Another correction of the old document is refused as before: it was replaced.
    await expect(telemed.correct(uniqueId, reading(129, 72))).rejects.toMatchObject({ code: 'document_deprecated' });
  });

  it('a correction interrupted by an earlier build between its two appends: completed today, in the new bytes', async () => {
    const { store, xds, telemed } = setup();
    const { uniqueId } = await uploadAsEarlierBuild(xds, reading(126));
    const corrected = reading(128, 72);
    const append = store.appendToStream.bind(store);
    const spy = jest.spyOn(store, 'appendToStream').mockImplementation(async (stream, events, options) => {
      if (events.some((e) => e.type === 'DocumentSubmitted')) throw new Error('the disk is full');
      return append(stream, events, options);
    });
    await expect(correctAsEarlierBuild(xds, uniqueId, corrected)).rejects.toThrow('the disk is full');
    spy.mockRestore();
    const done = await telemed.correct(uniqueId, corrected);
    expect(done.created).toBe(true);
    expect((await xds.retrieveDocument(done.uniqueId)).content).toBe(buildDocument(corrected).document);
    expect(await telemed.correct(uniqueId, corrected)).toMatchObject({ uniqueId: done.uniqueId, created: false });
  });
});
