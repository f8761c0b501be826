import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DateTime } from 'luxon';
import { InMemoryKeyStore } from '../../src/adapters/crypto/key-stores';
import { PatientCipher } from '../../src/adapters/crypto/patient-cipher';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { InMemoryRegistry } from '../../src/adapters/registry/in-memory-registry';
import { HmacPatientKeys } from '../../src/adapters/system/hmac-patient-keys';
import { EventStoreDocumentRepository } from '../../src/application/event-store-document-repository';
import { isOid } from '../../src/application/ids';
import type { Clock } from '../../src/application/ports/clock';
import type { RecordedEvent } from '../../src/application/ports/event-store';
import type { IdGenerator } from '../../src/application/ports/id-generator';
import { Projector } from '../../src/application/projector';
import { PatientErasure } from '../../src/application/patient-erasure';
import { OpeningRegistry } from '../../src/application/sealed-documents';
import { TeleMedService } from '../../src/application/telemed';
import { MAX_QUERY_RESULTS, XdsBackend } from '../../src/application/xds-backend';
import { Director, HL7Builder, MetadataBuilder, parseHl7Observation } from '../../src/domain/documents/hl7';
import { parseCpr, type Cpr } from '../../src/domain/monitoring/cpr';
import { createTeleObservation, type TeleObservation } from '../../src/domain/monitoring/tele-observation';
import { lastDays, timeInterval } from '../../src/domain/monitoring/time-interval';
import { RtsError, UnavailableError } from '../../src/domain/shared/errors';

const REPOSITORY = '2.25.42';
const NOW = DateTime.fromISO('2024-03-10T12:00:00Z', { zone: 'utc' });
const PATIENT = parseCpr('251248-1234');
const OTHER_PATIENT = parseCpr('010203-4321');
const seedXml = readFileSync(join(__dirname, '../fixtures/seed-hl7-example.xml'), 'utf8');

const at = (iso: string) => DateTime.fromISO(iso, { setZone: true });
const interval = (from: string, to: string) => timeInterval(at(from), at(to));
const MARCH = interval('2024-03-01T00:00:00Z', '2024-04-01T00:00:00Z');

const reading = (patientId: Cpr, systolic: number, diastolic: number, measuredAt: string): TeleObservation => ({
  patientId,
  systolic: { value: systolic, unit: 'mmHg' },
  diastolic: { value: diastolic, unit: 'mmHg' },
  measuredAt,
});

class CountingIds implements IdGenerator {
  private n = 0;
  uuid(): string {
    this.n += 1;
    return `00000000-0000-4000-8000-${String(this.n).padStart(12, '0')}`;
  }
}

/** An HL7 document and its metadata, as the seed's Director builds them. */
const docOf = (o: TeleObservation) => {
  const builder = new HL7Builder();
  Director.construct(o, builder);
  const metadata = new MetadataBuilder();
  Director.construct(o, metadata);
  return { document: builder.getResult(), metadata: metadata.getResult() };
};

const setup = () => {
  const store = new InMemoryEventStore(() => NOW.toJSDate());
  const registry = new InMemoryRegistry();
  const projector = new Projector(store, registry);
  const clock: Clock = { now: () => NOW };
  const xds = new XdsBackend({
    store,
    registry,
    projector,
    repositories: [new EventStoreDocumentRepository(REPOSITORY, store)],
    repositoryUniqueId: REPOSITORY,
    patientKeys: new HmacPatientKeys(Buffer.alloc(32, 7)),
    clock,
    ids: new CountingIds(),
  });
  const telemed = new TeleMedService(xds);
  const allEvents = () => store.readAll({ after: 0n, maxCount: 10_000 });
  return { store, registry, projector, xds, telemed, allEvents };
};

/** The RtsError a promise rejects with (failing when it resolves or rejects with anything else). */
const rejectionOf = async (promise: Promise<unknown>): Promise<RtsError> => {
  try {
    await promise;
  } catch (e) {
    if (e instanceof RtsError) return e;
    throw e;
  }
  throw new Error('expected a rejection with an RtsError');
};

describe('TeleMedService over XdsBackend (in-memory store and registry)', () => {
  it('processAndStore returns an OID under 2.25 (a UUID as an integer)', async () => {
    const { telemed } = setup();
    const uniqueId = await telemed.processAndStore(reading(PATIENT, 126, 70, '2024-03-10T11:00:00Z'));
    expect(uniqueId).toMatch(/^2\.25\.[1-9]\d*$/);
    expect(isOid(uniqueId)).toBe(true);
  });

  it('getObservationsFor returns a reading inside the interval and not outside it', async () => {
    const { telemed } = setup();
    const uniqueId = await telemed.processAndStore(reading(PATIENT, 126, 70, '2024-03-10T11:00:00Z'));
    expect(await telemed.getObservationsFor(PATIENT, MARCH)).toEqual([
      { uniqueId, patientId: PATIENT, systolic: { value: 126, unit: 'mmHg' }, diastolic: { value: 70, unit: 'mmHg' }, measuredAt: '2024-03-10T11:00:00Z' },
    ]);
    expect(await telemed.getObservationsFor(PATIENT, interval('2024-02-01T00:00:00Z', '2024-03-01T00:00:00Z'))).toEqual([]);
  });

  it('applies [from, to): a reading at from is included, one at to is not', async () => {
    const { telemed } = setup();
    const atFrom = await telemed.processAndStore(reading(PATIENT, 126, 70, '2024-03-10T10:00:00Z'));
    const atTo = await telemed.processAndStore(reading(PATIENT, 130, 80, '2024-03-10T11:00:00Z'));
    const found = await telemed.getObservationsFor(PATIENT, interval('2024-03-10T10:00:00Z', '2024-03-10T11:00:00Z'));
    expect(found.map((o) => o.uniqueId)).toEqual([atFrom]);
    const next = await telemed.getObservationsFor(PATIENT, interval('2024-03-10T11:00:00Z', '2024-03-10T12:00:00Z'));
    expect(next.map((o) => o.uniqueId)).toEqual([atTo]);
  });

  it('returns readings oldest first, and only the asked patient’s', async () => {
    const { telemed } = setup();
    const later = await telemed.processAndStore(reading(PATIENT, 130, 80, '2024-03-10T11:00:00Z'));
    const earlier = await telemed.processAndStore(reading(PATIENT, 126, 70, '2024-03-09T11:00:00Z'));
    await telemed.processAndStore(reading(OTHER_PATIENT, 140, 90, '2024-03-09T12:00:00Z'));
    expect((await telemed.getObservationsFor(PATIENT, MARCH)).map((o) => o.uniqueId)).toEqual([earlier, later]);
  });

  describe('idempotency by observationId', () => {
    it('a repeat gives the same uniqueId, created false, and stores one event', async () => {
      const { telemed, allEvents } = setup();
      const obs = reading(PATIENT, 126, 70, '2024-03-10T11:00:00Z');
      const first = await telemed.record(obs, { observationId: 'meter-7:0001' });
      const again = await telemed.record(obs, { observationId: 'meter-7:0001' });
      expect(first.created).toBe(true);
      expect(again).toMatchObject({ uniqueId: first.uniqueId, created: false });
      expect(await allEvents()).toHaveLength(1);
      expect(await telemed.getObservationsFor(PATIENT, MARCH)).toHaveLength(1);
    });

    it('the same observationId with other values: observation_id_reused', async () => {
      const { telemed, allEvents } = setup();
      await telemed.record(reading(PATIENT, 126, 70, '2024-03-10T11:00:00Z'), { observationId: 'obs-1' });
      const error = await rejectionOf(telemed.record(reading(PATIENT, 127, 70, '2024-03-10T11:00:00Z'), { observationId: 'obs-1' }));
      expect(error).toMatchObject({ kind: 'conflict', code: 'observation_id_reused' });
      expect(await allEvents()).toHaveLength(1);
    });

    it('the same observationId with other values sent concurrently: one is stored, the other refused', async () => {
      const { telemed, allEvents } = setup();
      const results = await Promise.allSettled([
        telemed.record(reading(PATIENT, 126, 70, '2024-03-10T11:00:00Z'), { observationId: 'obs-1' }),
        telemed.record(reading(PATIENT, 127, 70, '2024-03-10T11:00:00Z'), { observationId: 'obs-1' }),
      ]);
      expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
      const refused = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(refused?.reason).toMatchObject({ code: 'observation_id_reused' });
      expect(await allEvents()).toHaveLength(1);
    });

    it('the same reading sent concurrently twice: one event, both answered with the same uniqueId', async () => {
      const { telemed, allEvents } = setup();
      const obs = reading(PATIENT, 126, 70, '2024-03-10T11:00:00Z');
      const [a, b] = await Promise.all([telemed.record(obs, { observationId: 'obs-1' }), telemed.record(obs, { observationId: 'obs-1' })]);
      expect(a.uniqueId).toBe(b.uniqueId);
      expect([a.created, b.created].sort()).toEqual([false, true]);
      expect(await allEvents()).toHaveLength(1);
    });

    it('an upload whose time was the hub\'s "now", retried a moment later: the stored reading, at its stored time', async () => {
      const { telemed, allEvents } = setup();
      const first = await telemed.record(reading(PATIENT, 126, 70, '2024-03-10T11:00:00Z'), { observationId: 'obs-1', measuredAtDefaulted: true });
      const again = await telemed.record(reading(PATIENT, 126, 70, '2024-03-10T11:00:01Z'), { observationId: 'obs-1', measuredAtDefaulted: true });
      expect(first).toMatchObject({ created: true, measuredAt: '2024-03-10T11:00:00Z' });
      expect(again).toMatchObject({ uniqueId: first.uniqueId, created: false, measuredAt: '2024-03-10T11:00:00Z' });
      expect(await allEvents()).toHaveLength(1);
    });

    it('a defaulted time does not make other values the same reading: observation_id_reused', async () => {
      const { telemed, allEvents } = setup();
      await telemed.record(reading(PATIENT, 126, 70, '2024-03-10T11:00:00Z'), { observationId: 'obs-1', measuredAtDefaulted: true });
      const error = await rejectionOf(telemed.record(reading(PATIENT, 127, 70, '2024-03-10T11:00:01Z'), { observationId: 'obs-1', measuredAtDefaulted: true }));
      expect(error).toMatchObject({ kind: 'conflict', code: 'observation_id_reused' });
      expect(await allEvents()).toHaveLength(1);
    });

    it('a time the caller gave is part of the reading: another time under the same id is refused', async () => {
      const { telemed } = setup();
      await telemed.record(reading(PATIENT, 126, 70, '2024-03-10T11:00:00Z'), { observationId: 'obs-1' });
      const error = await rejectionOf(telemed.record(reading(PATIENT, 126, 70, '2024-03-10T11:00:01Z'), { observationId: 'obs-1' }));
      expect(error).toMatchObject({ code: 'observation_id_reused' });
    });

    it('two patients with the same observationId get different documents', async () => {
      const { telemed } = setup();
      const a = await telemed.record(reading(PATIENT, 126, 70, '2024-03-10T11:00:00Z'), { observationId: 'obs-1' });
      const b = await telemed.record(reading(OTHER_PATIENT, 126, 70, '2024-03-10T11:00:00Z'), { observationId: 'obs-1' });
      expect(a.uniqueId).not.toBe(b.uniqueId);
      expect(b.created).toBe(true);
      expect(await telemed.getObservationsFor(OTHER_PATIENT, MARCH)).toHaveLength(1);
    });
  });

  describe('corrections (XDS RPLC)', () => {
    const original = reading(PATIENT, 126, 70, '2024-03-10T11:00:00Z');
    const corrected = reading(PATIENT, 128, 72, '2024-03-10T11:00:00Z');

    it('the old reading leaves the queries, the new one is there, the old document stays retrievable as Deprecated', async () => {
      const { telemed, xds } = setup();
      const old = await telemed.processAndStore(original);
      const result = await telemed.correct(old, corrected, { correctionId: 'fix-1' });
      expect(result.created).toBe(true);
      expect(result.uniqueId).not.toBe(old);
      const found = await telemed.getObservationsFor(PATIENT, MARCH);
      expect(found.map((o) => [o.uniqueId, o.systolic.value, o.diastolic.value])).toEqual([[result.uniqueId, 128, 72]]);

      const oldDoc = await xds.retrieveDocument(old);
      expect(oldDoc.entry).toMatchObject({ status: 'Deprecated', replacedBy: result.uniqueId });
      expect(parseHl7Observation(oldDoc.content).systolic.value).toBe(126);
      const newDoc = await xds.retrieveDocument(result.uniqueId);
      expect(newDoc.entry).toMatchObject({ status: 'Approved', replaces: old, replacedBy: null });
    });

    it('a second correction of the old document: document_deprecated', async () => {
      const { telemed } = setup();
      const old = await telemed.processAndStore(original);
      await telemed.correct(old, corrected, { correctionId: 'fix-1' });
      const error = await rejectionOf(telemed.correct(old, reading(PATIENT, 129, 72, '2024-03-10T11:00:00Z'), { correctionId: 'fix-2' }));
      expect(error).toMatchObject({ kind: 'conflict', code: 'document_deprecated' });
    });

    it('a correction of the correction is allowed, and the chain is kept both ways', async () => {
      const { telemed, xds } = setup();
      const a = await telemed.processAndStore(original);
      const b = (await telemed.correct(a, corrected, { correctionId: 'fix-1' })).uniqueId;
      const c = (await telemed.correct(b, reading(PATIENT, 129, 73, '2024-03-10T11:00:00Z'), { correctionId: 'fix-2' })).uniqueId;
      expect((await telemed.getObservationsFor(PATIENT, MARCH)).map((o) => o.uniqueId)).toEqual([c]);
      expect((await xds.retrieveDocument(b)).entry).toMatchObject({ status: 'Deprecated', replaces: a, replacedBy: c });
    });

    it('a correction retried with the same correctionId: same new uniqueId, nothing stored twice', async () => {
      const { telemed, allEvents } = setup();
      const old = await telemed.processAndStore(original);
      const first = await telemed.correct(old, corrected, { correctionId: 'fix-1' });
      const eventsAfterFirst = (await allEvents()).length;
      const again = await telemed.correct(old, corrected, { correctionId: 'fix-1' });
      expect(again).toMatchObject({ uniqueId: first.uniqueId, created: false });
      expect(await allEvents()).toHaveLength(eventsAfterFirst);
      expect(eventsAfterFirst).toBe(3); // submitted, deprecated, replacement submitted
      expect(await telemed.getObservationsFor(PATIENT, MARCH)).toHaveLength(1);
    });

    it('two concurrent corrections of one document: exactly one wins', async () => {
      const { telemed } = setup();
      const old = await telemed.processAndStore(original);
      const results = await Promise.allSettled([
        telemed.correct(old, corrected, { correctionId: 'fix-a' }),
        telemed.correct(old, reading(PATIENT, 129, 72, '2024-03-10T11:00:00Z'), { correctionId: 'fix-b' }),
      ]);
      expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
      expect(results.find((r): r is PromiseRejectedResult => r.status === 'rejected')?.reason).toMatchObject({ code: 'document_deprecated' });
      expect(await telemed.getObservationsFor(PATIENT, MARCH)).toHaveLength(1);
    });

    it('the same correctionId with other values sent concurrently: one is stored, the other refused correction_id_reused', async () => {
      // Both read the document before either deprecates it; the second deprecation is the first's repeat (the same
      // correctionId, so the same replacement id), and its document then meets the other values under that id: the id
      // was used for another correction, not a document replaced by someone else.
      const { telemed } = setup();
      const old = await telemed.processAndStore(original);
      const other = reading(PATIENT, 129, 73, '2024-03-10T11:00:00Z');
      const results = await Promise.allSettled([telemed.correct(old, corrected, { correctionId: 'fix-1' }), telemed.correct(old, other, { correctionId: 'fix-1' })]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected']);
      expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ kind: 'conflict', code: 'correction_id_reused' });
      const found = await telemed.getObservationsFor(PATIENT, MARCH);
      expect(found.map((o) => [o.uniqueId, o.systolic.value])).toEqual([[(results[0] as PromiseFulfilledResult<{ uniqueId: string }>).value.uniqueId, corrected.systolic.value]]);
    });

    // Two hubs on one store (or two requests on one hub): B reads the document while A is between its two appends,
    // sees the replacement missing and registers its own document under A's replacement id. CI saw the loser told
    // correction_id_reused (for a correction id it had used once) instead of document_deprecated.
    it('a correction that meets another between its two appends: one wins, the other is told document_deprecated, whichever registers first', async () => {
      const other = reading(PATIENT, 129, 73, '2024-03-10T11:00:00Z');
      for (const first of ['B', 'A'] as const) {
        const { telemed, store } = setup();
        const old = await telemed.processAndStore(original);
        const append = store.appendToStream.bind(store);
        let phase: 'before' | 'deprecated' | 'b-at-submit' | 'released' = 'before';
        let bAtSubmit!: () => void;
        const bReachedSubmit = new Promise<void>((ok) => (bAtSubmit = ok));
        let releaseB!: () => void;
        const bReleased = new Promise<void>((ok) => (releaseB = ok));
        let b: Promise<unknown> | undefined;
        jest.spyOn(store, 'appendToStream').mockImplementation(async (stream, events, options) => {
          if (phase === 'before' && events.some((e) => e.type === 'DocumentDeprecated')) {
            const result = await append(stream, events, options); // A's deprecation
            phase = 'deprecated';
            b = telemed.correct(old, other, { correctionId: 'fix-b' }).catch((e: unknown) => e);
            if (first === 'B') await b; // B registers its document under A's replacement id first
            else await bReachedSubmit; // B has read the document and stops just before its append
            return result;
          }
          if (first === 'A' && phase === 'deprecated' && events.some((e) => e.type === 'DocumentSubmitted')) {
            phase = 'b-at-submit';
            bAtSubmit();
            await bReleased;
          }
          return append(stream, events, options);
        });
        const a = await telemed.correct(old, corrected, { correctionId: 'fix-a' }).catch((e: unknown) => e);
        releaseB();
        phase = 'released';
        const outcomes = { A: a, B: await b };
        const winner = first;
        const loser = first === 'A' ? 'B' : 'A';
        expect(outcomes[winner]).toMatchObject({ created: true });
        expect(outcomes[loser]).toMatchObject({ code: 'document_deprecated' });
        const found = await telemed.getObservationsFor(PATIENT, MARCH);
        const winning = winner === 'A' ? corrected : other;
        expect(found.map((o) => [o.uniqueId, o.systolic.value])).toEqual([[(outcomes[winner] as { uniqueId: string }).uniqueId, winning.systolic.value]]);
      }
    });

    it('two corrections at once with the same values (a retry while the first still runs): 201 and 200, one uniqueId', async () => {
      // B reads the document before A deprecates it, then meets A's deprecation: it was told 409 document_deprecated.
      for (const [idA, idB] of [['fix-a', 'fix-b'], ['fix-a', undefined], [undefined, 'fix-b']] as const) {
        for (const aRegistersFirst of [true, false]) {
          const { telemed, store } = setup();
          const old = await telemed.processAndStore(original);
          const append = store.appendToStream.bind(store);
          let b: Promise<unknown> | undefined;
          let bAtDeprecation!: () => void;
          const bReadTheDocument = new Promise<void>((ok) => (bAtDeprecation = ok));
          let releaseB!: () => void;
          const aDeprecated = new Promise<void>((ok) => (releaseB = ok));
          let aSubmitted!: () => void;
          const aRegistered = new Promise<void>((ok) => (aSubmitted = ok));
          jest.spyOn(store, 'appendToStream').mockImplementation(async (stream, events, options) => {
            if (events.some((e) => e.type === 'DocumentDeprecated')) {
              if (b === undefined) {
                // A's deprecation: B reads the document first and comes to its own deprecation.
                b = telemed.correct(old, corrected, idB === undefined ? {} : { correctionId: idB }).catch((e: unknown) => e);
                await bReadTheDocument;
                const result = await append(stream, events, options);
                releaseB();
                return result;
              }
              if (options?.expectedVersion === 0n) {
                bAtDeprecation();
                await aDeprecated;
                if (aRegistersFirst) await aRegistered; // else B comes back while A is between its two appends
              }
            }
            const result = await append(stream, events, options);
            if (events.some((e) => e.type === 'DocumentSubmitted')) aSubmitted();
            return result;
          });
          const a = await telemed.correct(old, corrected, idA === undefined ? {} : { correctionId: idA });
          const other = (await b) as { uniqueId: string; created: boolean };
          const context = { idA, idB, aRegistersFirst };
          expect({ ...context, b: other }).toEqual({ ...context, b: expect.objectContaining({ uniqueId: a.uniqueId, created: expect.any(Boolean) }) });
          expect([a.created, other.created].sort()).toEqual([false, true]);
          expect((await telemed.getObservationsFor(PATIENT, MARCH)).map((o) => [o.uniqueId, o.systolic.value])).toEqual([[a.uniqueId, corrected.systolic.value]]);
        }
      }
    });

    /** The store's next append of a DocumentSubmitted fails (a full disk): a correction stops between its two appends. */
    const failNextSubmit = (store: ReturnType<typeof setup>['store']): void => {
      const append = store.appendToStream.bind(store);
      let armed = true;
      jest.spyOn(store, 'appendToStream').mockImplementation(async (stream, events, options) => {
        if (armed && events.some((e) => e.type === 'DocumentSubmitted')) {
          armed = false;
          throw new UnavailableError('storage_unavailable', 'the disk is full');
        }
        return append(stream, events, options);
      });
    };

    it('a correction whose second append failed: retried without a correctionId it completes; or the next correction completes it', async () => {
      for (const retry of ['same', 'other'] as const) {
        const { telemed, store } = setup();
        const old = await telemed.processAndStore(original);
        failNextSubmit(store);
        expect(await rejectionOf(telemed.correct(old, corrected))).toMatchObject({ code: 'storage_unavailable' });
        // The old document is deprecated, its replacement missing: the old reading stays in the queries until it completes.
        expect((await telemed.getObservationsFor(PATIENT, MARCH)).map((o) => [o.uniqueId, o.systolic.value])).toEqual([[old, 126]]);
        const next = retry === 'same' ? corrected : reading(PATIENT, 129, 73, '2024-03-10T11:00:00Z');
        const done = await telemed.correct(old, next);
        expect(done.created).toBe(true);
        const found = await telemed.getObservationsFor(PATIENT, MARCH);
        expect(found.map((o) => [o.uniqueId, o.systolic.value])).toEqual([[done.uniqueId, next.systolic.value]]);
        expect((await telemed.correct(old, next)).uniqueId).toBe(done.uniqueId); // and again: the same, stored once
        expect(await telemed.getObservationsFor(PATIENT, MARCH)).toHaveLength(1);
      }
    });

    it('a correction that completed an interrupted one: its retry with its own correctionId is 200, the same uniqueId', async () => {
      const { telemed, store } = setup();
      const old = await telemed.processAndStore(original);
      failNextSubmit(store);
      expect(await rejectionOf(telemed.correct(old, corrected, { correctionId: 'fix-1' }))).toMatchObject({ code: 'storage_unavailable' });
      const other = reading(PATIENT, 129, 73, '2024-03-10T11:00:00Z');
      const done = await telemed.correct(old, other, { correctionId: 'fix-2' });
      expect(done.created).toBe(true);
      // fix-2's client retries (a timeout): its correction is in place. It was told 409 document_deprecated.
      expect(await telemed.correct(old, other, { correctionId: 'fix-2' })).toMatchObject({ uniqueId: done.uniqueId, created: false });
      // fix-1's retry: its values are not the ones in place, and the refusal says why it may be.
      const refused = await rejectionOf(telemed.correct(old, corrected, { correctionId: 'fix-1' }));
      expect(refused).toMatchObject({ code: 'correction_id_reused', message: expect.stringContaining('another correction completed it') });
      expect((await telemed.getObservationsFor(PATIENT, MARCH)).map((o) => [o.uniqueId, o.systolic.value])).toEqual([[done.uniqueId, 129]]);
    });

    it('a correction naming another patient: correction_patient_mismatch, nothing changed', async () => {
      const { telemed, allEvents } = setup();
      const old = await telemed.processAndStore(original);
      const error = await rejectionOf(telemed.correct(old, reading(OTHER_PATIENT, 128, 72, '2024-03-10T11:00:00Z'), { correctionId: 'fix-1' }));
      expect(error).toMatchObject({ code: 'correction_patient_mismatch' });
      expect(await allEvents()).toHaveLength(1);
      expect((await telemed.getObservationsFor(PATIENT, MARCH)).map((o) => o.uniqueId)).toEqual([old]);
    });

    it('a correction of an unknown document: document_not_found', async () => {
      const { telemed } = setup();
      expect(await rejectionOf(telemed.correct('2.25.12345', corrected))).toMatchObject({ code: 'document_not_found' });
    });

    it('patientOf reads the patient back from the document', async () => {
      const { telemed } = setup();
      expect(await telemed.patientOf(await telemed.processAndStore(original))).toBe(PATIENT);
    });
  });

  it('an unknown patient: unknown_patient; a known one with nothing in the interval: an empty list', async () => {
    const { telemed } = setup();
    await telemed.processAndStore(reading(PATIENT, 126, 70, '2024-03-10T11:00:00Z'));
    expect(await rejectionOf(telemed.getObservationsFor(OTHER_PATIENT, MARCH))).toMatchObject({ kind: 'not_found', code: 'unknown_patient' });
    expect(await telemed.getObservationsFor(PATIENT, interval('2023-01-01T00:00:00Z', '2023-02-01T00:00:00Z'))).toEqual([]);
  });

  it(`more than MAX_QUERY_RESULTS (${MAX_QUERY_RESULTS}) current documents in the interval: too_many_results; exactly that many are answered`, async () => {
    const { telemed, xds, registry } = setup();
    const patientKey = xds['deps'].patientKeys.keyFor(PATIENT);
    const start = Date.parse('2024-03-01T00:00:00Z');
    // Rows as the projection makes them from DocumentSubmitted events (values from the summary, so no content to parse).
    const events = Array.from({ length: MAX_QUERY_RESULTS + 1 }, (_, i): RecordedEvent => {
      const time = new Date(start + i * 60_000).toISOString().replace('.000Z', 'Z');
      const data = {
        ...docOf(reading(PATIENT, 126, 70, time)).metadata,
        uniqueId: `2.25.${i + 1}`, patientKey, repositoryUniqueId: REPOSITORY, observationId: null, creationTime: time,
        hash: 'a'.repeat(64), size: 1, replaces: null, content: '', summary: { systolic: 126, diastolic: 70 },
      };
      return { id: `e-${i}`, type: 'DocumentSubmitted', data, metadata: {}, streamName: `document-2.25.${i + 1}`, streamVersion: 0n, globalPosition: BigInt(i + 1), recordedAt: time };
    });
    await registry.apply(events, 0n); // the store is empty: the projector has nothing to add
    expect(await rejectionOf(telemed.getObservationsFor(PATIENT, MARCH))).toMatchObject({ kind: 'validation', code: 'too_many_results' });
    const allButLast = interval('2024-03-01T00:00:00Z', events[MAX_QUERY_RESULTS]!.data['serviceStartTime'] as string);
    expect(await telemed.getObservationsFor(PATIENT, allButLast)).toHaveLength(MAX_QUERY_RESULTS);
  });

  it('allEntriesOf reads the registry page after page: every entry of a patient with more than a page (1,000), oldest first', async () => {
    const { xds, registry } = setup();
    const patientKey = xds['deps'].patientKeys.keyFor(PATIENT);
    // 2,500 entries, three to a second: page boundaries (1,000, 2,000) fall inside runs of one time, where the uniqueId orders them.
    const events = Array.from({ length: 2_500 }, (_, i): RecordedEvent => {
      const time = new Date(Date.parse('2024-03-01T00:00:00Z') + Math.floor(i / 3) * 1000).toISOString().replace('.000Z', 'Z');
      const uniqueId = `2.25.${1_000_000 + i}`;
      const data = {
        ...docOf(reading(PATIENT, 126, 70, time)).metadata,
        uniqueId, patientKey, repositoryUniqueId: REPOSITORY, observationId: null, creationTime: time,
        hash: 'a'.repeat(64), size: 1, replaces: null, content: '', summary: { systolic: 126, diastolic: 70 },
      };
      return { id: `e-${i}`, type: 'DocumentSubmitted', data, metadata: {}, streamName: `document-${uniqueId}`, streamVersion: 0n, globalPosition: BigInt(i + 1), recordedAt: time };
    });
    await registry.apply(events, 0n);
    const all = await xds.allEntriesOf(PATIENT);
    expect(all.map((e) => e.uniqueId)).toEqual(events.map((e) => e.data['uniqueId']));
  });

  it('allEntriesOf is one snapshot: a correction applied while the pages are read is in the answer whole or not at all', async () => {
    const inner = new InMemoryRegistry();
    const store = new InMemoryEventStore(() => NOW.toJSDate());
    const patientKeys = new HmacPatientKeys(Buffer.alloc(32, 7));
    const patientKey = patientKeys.keyFor(PATIENT);
    let position = 0n;
    const submitted = (uniqueId: string, time: string, replaces: string | null = null): RecordedEvent => {
      const data = {
        ...docOf(reading(PATIENT, 126, 70, time)).metadata,
        uniqueId, patientKey, repositoryUniqueId: REPOSITORY, observationId: null, creationTime: time,
        hash: 'a'.repeat(64), size: 1, replaces, content: '', summary: { systolic: 126, diastolic: 70 },
      };
      return { id: `e-${++position}`, type: 'DocumentSubmitted', data, metadata: {}, streamName: `document-${uniqueId}`, streamVersion: 0n, globalPosition: position, recordedAt: time };
    };
    // 1,001 readings (more than a page), then a correction of the first whose replacement is measured after them all:
    // the old reading is on the first page, the new one on the last.
    const at = (i: number) => new Date(Date.parse('2024-03-01T00:00:00Z') + i * 60_000).toISOString().replace('.000Z', 'Z');
    await inner.apply(Array.from({ length: 1_001 }, (_, i) => submitted(`2.25.${1_000_000 + i}`, at(i))), position);
    const [OLD, NEW] = ['2.25.1000000', '2.25.2000000'];
    const correction = [
      { id: 'e-dep', type: 'DocumentDeprecated', data: { uniqueId: OLD, replacedBy: NEW, deprecatedAt: at(2_000) }, metadata: {}, streamName: `document-${OLD}`, streamVersion: 1n, globalPosition: ++position, recordedAt: at(2_000) },
      submitted(NEW, at(2_000), OLD),
    ] satisfies RecordedEvent[];
    // The registry the backend reads: the correction is applied as soon as the registry has answered a first read.
    let landed = false;
    const registry = new Proxy(inner, {
      get(target, property) {
        const value = Reflect.get(target, property, target) as unknown;
        if (typeof value !== 'function') return value;
        if (property !== 'findAllOf' && property !== 'allEntriesOf') return value.bind(target);
        return async (...args: unknown[]) => {
          const answer = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          if (!landed) {
            landed = true;
            await target.apply(correction, position);
          }
          return answer;
        };
      },
    });
    const xds = new XdsBackend({ store, registry, projector: new Projector(store, registry), repositories: [new EventStoreDocumentRepository(REPOSITORY, store)], repositoryUniqueId: REPOSITORY, patientKeys, clock: { now: () => NOW }, ids: new CountingIds() });
    const all = await xds.allEntriesOf(PATIENT);
    expect(landed).toBe(true);
    // The reading is current once: the old one (correction not yet there) or the new one (the old deprecated), not both.
    expect(all.filter((e) => (e.uniqueId === OLD || e.uniqueId === NEW) && e.status === 'Approved').map((e) => e.uniqueId)).toHaveLength(1);
    expect(all).toHaveLength(all.some((e) => e.uniqueId === NEW) ? 1_002 : 1_001);
    // And the next export has the correction.
    const after = await xds.allEntriesOf(PATIENT);
    expect(after.filter((e) => e.status === 'Approved' && (e.uniqueId === OLD || e.uniqueId === NEW)).map((e) => e.uniqueId)).toEqual([NEW]);
  });

  /** An XdsBackend over an in-memory store whose documents are sealed under patients' keys (so they can be erased). */
  const sealedXds = () => {
    const store = new InMemoryEventStore(() => NOW.toJSDate());
    const protection = new PatientCipher({ keys: new InMemoryKeyStore() });
    const registry = new OpeningRegistry(new InMemoryRegistry(), protection);
    const projector = new Projector(store, registry);
    const patientKeys = new HmacPatientKeys(Buffer.alloc(32, 7));
    const xds = new XdsBackend({ store, registry, projector, repositories: [new EventStoreDocumentRepository(REPOSITORY, store)], repositoryUniqueId: REPOSITORY, patientKeys, clock: { now: () => NOW }, ids: new CountingIds(), protection });
    return { store, protection, registry, projector, patientKeys, xds };
  };

  it("a document whose patient's key was deleted before the registry caught up with the erasure: patient_erased", async () => {
    // The window of an erasure between its key deletion and the projection removing the rows: the row is still there,
    // its content no longer opens.
    const { protection, patientKeys, xds } = sealedXds();
    const uniqueId = await new TeleMedService(xds).processAndStore(reading(PATIENT, 126, 70, '2024-03-10T11:00:00Z'));
    expect((await xds.retrieveDocument(uniqueId)).content).toContain('126.0');
    await protection.erase(patientKeys.keyFor(PATIENT));
    expect((await xds.entry(uniqueId)).uniqueId).toBe(uniqueId); // the row is still there
    expect(await rejectionOf(xds.retrieveDocument(uniqueId))).toMatchObject({ kind: 'not_found', code: 'patient_erased' });
  });

  it("a repeated upload that the patient's erasure overtakes between its look-up and its answer: patient_erased", async () => {
    // Seen in a kill -9 review: a device's retry arriving while the patient was being erased got 404
    // document_not_found, a status POST /observations does not even list, instead of 410 patient_erased.
    const { store, protection, registry, projector, patientKeys, xds } = sealedXds();
    const telemed = new TeleMedService(xds);
    const erasure = new PatientErasure({ store, protection, patientKeys, registry, projectors: [projector], clock: { now: () => NOW } });
    const obs = reading(PATIENT, 126, 70, '2024-03-10T11:00:00Z');
    const { uniqueId } = await telemed.record(obs, { observationId: 'obs-1' });
    // The repeat reads the document's stream (and finds it a repeat); the erasure completes right after that read.
    const readStream = store.readStream.bind(store);
    let erasing: Promise<unknown> | null = null;
    store.readStream = (async (...args: Parameters<typeof store.readStream>) => {
      const read = await readStream(...args);
      if (args[0] === `document-${uniqueId}` && erasing === null) await (erasing = erasure.erase(PATIENT, { by: 'dpo' }));
      return read;
    }) as typeof store.readStream;
    const error = await rejectionOf(telemed.record(obs, { observationId: 'obs-1' }));
    expect(erasing).not.toBeNull();
    expect(error).toMatchObject({ kind: 'not_found', code: 'patient_erased' });
  });

  it('an unknown document: document_not_found', async () => {
    const { xds } = setup();
    expect(await rejectionOf(xds.retrieveDocument('2.25.999'))).toMatchObject({ code: 'document_not_found' });
  });

  it('projector.rebuild() gives the same answers', async () => {
    const { telemed, projector } = setup();
    const a = await telemed.processAndStore(reading(PATIENT, 126, 70, '2024-03-08T11:00:00Z'));
    await telemed.processAndStore(reading(PATIENT, 130, 80, '2024-03-09T11:00:00Z'));
    await telemed.correct(a, reading(PATIENT, 127, 71, '2024-03-08T11:00:00Z'), { correctionId: 'fix-1' });
    await telemed.processAndStore(reading(OTHER_PATIENT, 140, 90, '2024-03-09T12:00:00Z'));
    const before = [await telemed.getObservationsFor(PATIENT, MARCH), await telemed.getObservationsFor(OTHER_PATIENT, MARCH)];
    await projector.rebuild();
    const after = [await telemed.getObservationsFor(PATIENT, MARCH), await telemed.getObservationsFor(OTHER_PATIENT, MARCH)];
    expect(after).toEqual(before);
    expect(before[0]).toHaveLength(2);
  });

  it('no stream name and no registry row contains the CPR number', async () => {
    const { telemed, registry, allEvents } = setup();
    const a = await telemed.record(reading(PATIENT, 126, 70, '2024-03-10T11:00:00Z'), { observationId: 'obs-1' });
    await telemed.correct(a.uniqueId, reading(PATIENT, 128, 72, '2024-03-10T11:00:00Z'), { correctionId: 'fix-1' });
    await telemed.processAndStore(reading(OTHER_PATIENT, 140, 90, '2024-03-09T12:00:00Z'));
    await telemed.getObservationsFor(PATIENT, MARCH);
    const events = await allEvents();
    expect(events.length).toBeGreaterThanOrEqual(4);
    const rows = await Promise.all(events.map((e) => registry.get(String(e.data['uniqueId']))));
    expect(rows.every((r) => r !== null)).toBe(true);
    for (const cpr of [PATIENT, OTHER_PATIENT]) {
      const digits = cpr.replace('-', '');
      for (const text of [...events.map((e) => e.streamName), ...events.map((e) => JSON.stringify(e.metadata)), ...rows.map((r) => JSON.stringify(r))]) {
        expect(text).not.toContain(cpr);
        expect(text).not.toContain(digits);
        expect(text).not.toContain(cpr.slice(0, 6));
      }
    }
  });

  it("the seed's own HL7 example, registered as is, comes back as 126/70 at 2017-05-10T14:50:14Z", async () => {
    const { xds, telemed } = setup();
    const seedObservation = parseHl7Observation(seedXml);
    const builder = new MetadataBuilder();
    Director.construct(seedObservation, builder);
    const { uniqueId, created } = await xds.provideAndRegisterDocument(builder.getResult(), seedXml);
    expect(created).toBe(true);
    expect(await telemed.getObservationsFor(PATIENT, interval('2017-05-10T00:00:00Z', '2017-05-11T00:00:00Z'))).toEqual([
      { uniqueId, patientId: '251248-1234', systolic: { value: 126, unit: 'mmHg' }, diastolic: { value: 70, unit: 'mmHg' }, measuredAt: '2017-05-10T14:50:14Z' },
    ]);
    // Stored byte for byte: the repository gives back the seed's document itself.
    expect((await xds.retrieveDocument(uniqueId)).content).toBe(seedXml);
    expect(await telemed.getObservationsFor(PATIENT, interval('2017-05-10T14:50:15Z', '2017-05-11T00:00:00Z'))).toEqual([]);
  });

  describe('library callers: a TeleObservation built by hand is validated, a document from outside is checked', () => {
    const week = interval('2024-03-01T00:00:00Z', '2024-03-10T12:00:00Z');

    it('refuses NaN, systolic below diastolic, a future time and a forged CPR as createTeleObservation does; nothing is stored and reads go on', async () => {
      const { telemed, allEvents } = setup();
      await telemed.processAndStore(reading(PATIENT, 126, 70, '2024-03-09T08:00:00Z'));
      const bad: [TeleObservation, string][] = [
        [reading(PATIENT, Number('12O'), 70, '2024-03-09T09:00:00Z'), 'invalid_observation'],
        [reading(PATIENT, 70, 126, '2024-03-09T09:00:00Z'), 'implausible_observation'],
        [reading(PATIENT, 126, 70, '2025-03-09T09:00:00Z'), 'implausible_observation'],
        [reading('310299-1234' as Cpr, 126, 70, '2024-03-09T09:00:00Z'), 'invalid_patient_id'],
        [{ ...reading(PATIENT, 126, 70, '2024-03-09T09:00:00Z'), systolic: '126' } as unknown as TeleObservation, 'invalid_observation'],
        [null as unknown as TeleObservation, 'invalid_observation'],
      ];
      for (const [observation, code] of bad) {
        expect((await rejectionOf(telemed.processAndStore(observation))).code).toBe(code);
        expect((await rejectionOf(telemed.record(observation, { observationId: 'x1' }))).code).toBe(code);
      }
      const [first] = await telemed.getObservationsFor(PATIENT, week);
      expect((await rejectionOf(telemed.correct(first!.uniqueId, reading(PATIENT, 70, 126, '2024-03-09T08:00:00Z')))).code).toBe('implausible_observation');
      expect((await allEvents()).filter((e) => e.type === 'DocumentSubmitted')).toHaveLength(1);
      expect(await telemed.getObservationsFor(PATIENT, week)).toHaveLength(1);
    });

    it("refuses an observation parsed from a stored HL7 document dated before the patient's birth (parsing skips that check)", async () => {
      const { telemed, allEvents } = setup();
      // 251248-1234: born 25 December 1948.
      const parsed = parseHl7Observation(seedXml.replace('20170510145014', '19000101120000'));
      expect((await rejectionOf(telemed.processAndStore(parsed))).code).toBe('implausible_observation');
      expect((await rejectionOf(telemed.record(parsed, { observationId: 'x1' }))).code).toBe('implausible_observation');
      expect((await allEvents()).filter((e) => e.type === 'DocumentSubmitted')).toHaveLength(0);
    });

    it('refuses an observationId or correctionId that is empty, too long, or is a CPR number (ids are stored in clear)', async () => {
      const { telemed, allEvents } = setup();
      for (const observationId of ['', 'x'.repeat(65), 'a b', '251248-1234', '2512481234']) {
        const e = await rejectionOf(telemed.record(reading(PATIENT, 126, 70, '2024-03-09T08:00:00Z'), { observationId }));
        expect(e.code).toBe('invalid_observation');
        expect(e.message).not.toContain('251248');
      }
      // A UUID whose digits happen to read like a CPR number inside it is an id like any other.
      await telemed.record(reading(PATIENT, 126, 70, '2024-03-09T07:00:00Z'), { observationId: 'ab123456-7890-4abc-8def-0123456789ab' });
      const { uniqueId } = await telemed.record(reading(PATIENT, 126, 70, '2024-03-09T08:00:00Z'), { observationId: 'meter-42:20240309080000' });
      expect((await rejectionOf(telemed.correct(uniqueId, reading(PATIENT, 127, 70, '2024-03-09T08:00:00Z'), { correctionId: '2512481234' }))).code).toBe('invalid_observation');
      expect(JSON.stringify((await allEvents()).map((e) => [e.data, e.metadata]))).not.toContain('2512481234');
      // Nor one that holds the patient's own number in any spelling; another patient's digits are an id as any.
      for (const observationId of ['251248-1234-a', 'p251248-1234', 'bp:2512481234', '251248.1234', 'x_251248_1234', 'bp:19481225-1234', 'obs-25-12-1948-1234']) {
        expect((await rejectionOf(telemed.record(reading(PATIENT, 126, 70, '2024-03-09T08:00:00Z'), { observationId }))).message).toMatch(/must not (hold the patient's CPR number|be a CPR number)/);
      }
      expect((await rejectionOf(telemed.correct(uniqueId, reading(PATIENT, 127, 70, '2024-03-09T08:00:00Z'), { correctionId: 'fix-2512481234' }))).code).toBe('invalid_observation');
      await telemed.record(reading(PATIENT, 126, 70, '2024-03-09T06:00:00Z'), { observationId: 'meter-0102034321' });
    });

    it('a refused observationId or correctionId is named in the error: the field a caller has to change', async () => {
      const { telemed } = setup();
      const refusedUpload = await rejectionOf(telemed.record(reading(PATIENT, 126, 70, '2024-03-09T08:00:00Z'), { observationId: 'a b' }));
      expect(refusedUpload.details.map((d) => d.path)).toEqual(['observationId']);
      expect(refusedUpload.message).toMatch(/^observationId /);
      const { uniqueId } = await telemed.record(reading(PATIENT, 126, 70, '2024-03-09T08:00:00Z'), { observationId: 'meter-42:1' });
      const refusedCorrection = await rejectionOf(telemed.correct(uniqueId, reading(PATIENT, 127, 70, '2024-03-09T08:00:00Z'), { correctionId: 'fix:2512481234' }));
      expect(refusedCorrection.details.map((d) => d.path)).toEqual(['correctionId']);
      expect(refusedCorrection.message).toMatch(/^correctionId /);
    });

    it('retrieves documents registered under an earlier repository OID once the OID has changed (same event store)', async () => {
      const { xds, store, registry, projector } = setup();
      const a = docOf(reading(PATIENT, 150, 95, '2024-03-09T08:00:00Z'));
      const { uniqueId } = await xds.provideAndRegisterDocument(a.metadata, a.document);
      const renamed = new XdsBackend({ ...xds['deps'], repositories: [new EventStoreDocumentRepository('1.2.208.176.7.1.1', store)], repositoryUniqueId: '1.2.208.176.7.1.1', registry, projector });
      const got = await renamed.retrieveDocument(uniqueId);
      expect(got).toMatchObject({ entry: { repositoryUniqueId: REPOSITORY }, content: a.document });
    });

    it("refuses metadata that is not a blood pressure document's: free text such as a title is stored in clear", async () => {
      const { xds, allEvents } = setup();
      const a = docOf(reading(PATIENT, 150, 95, '2024-03-09T08:00:00Z'));
      for (const [field, value] of [['title', 'BP of Jens Hansen 251248-1234'], ['classCode', '<script>'], ['mimeType', 'application/pdf'], ['serviceStopTime', '1999-01-01T00:00:00Z']] as const) {
        const e = await rejectionOf(xds.provideAndRegisterDocument({ ...a.metadata, [field]: value } as typeof a.metadata, a.document));
        expect(e).toMatchObject({ code: 'invalid_document', details: [expect.objectContaining({ path: field })] });
        expect(e.message).not.toContain('Jens');
      }
      expect(await allEvents()).toHaveLength(0);
      const { uniqueId } = await xds.provideAndRegisterDocument(a.metadata, a.document);
      // creationTime is an XDS DTM at whole seconds.
      expect((await xds.retrieveDocument(uniqueId)).entry.creationTime).toMatch(/T\d{2}:\d{2}:\d{2}Z$/);
    });

    it('holds a hand-built interval to the query rules: order, width, valid bounds; lastDays(NaN) too', async () => {
      const { telemed, xds } = setup();
      await telemed.processAndStore(reading(PATIENT, 126, 70, '2024-03-09T08:00:00Z'));
      const at = (iso: string) => DateTime.fromISO(iso, { zone: 'utc' });
      const cases: [unknown, string][] = [
        [{ from: at('2024-03-10T00:00:00Z'), to: at('2024-03-01T00:00:00Z') }, 'invalid_interval'],
        [{ from: at('2021-01-01T00:00:00Z'), to: at('2024-03-10T00:00:00Z') }, 'interval_too_wide'],
        [{ from: DateTime.invalid('nope'), to: at('2024-03-10T00:00:00Z') }, 'invalid_interval'],
        [{ from: '2024-03-01T00:00:00Z', to: '2024-03-10T00:00:00Z' }, 'invalid_interval'],
        [null, 'invalid_interval'],
      ];
      for (const [interval, code] of cases) {
        expect((await rejectionOf(telemed.getObservationsFor(PATIENT, interval as never))).code).toBe(code);
      }
      expect((await rejectionOf(xds.retrieveDocumentSet(PATIENT, at('2021-01-01T00:00:00Z'), at('2024-03-10T00:00:00Z')))).code).toBe('interval_too_wide');
      expect((await rejectionOf(telemed.getObservationsFor('310299-1234' as Cpr, week))).code).toBe('invalid_patient_id');
      expect(() => lastDays(Number.NaN, NOW)).toThrow(expect.objectContaining({ code: 'invalid_interval' }));
      expect(await telemed.getObservationsFor(PATIENT, week)).toHaveLength(1);
    });

    it('takes an observation createTeleObservation made as it is (frozen, not validated twice)', async () => {
      const { telemed } = setup();
      const made = createTeleObservation({ patientId: '251248-1234', systolic: 126, diastolic: 70, measuredAt: '2024-03-09T08:00:00Z' }, NOW);
      expect(Object.isFrozen(made)).toBe(true);
      expect(Object.isFrozen(made.systolic)).toBe(true);
      const { created } = await telemed.record(made);
      expect(created).toBe(true);
      // A JavaScript caller's bare numbers are taken as mmHg, as createTeleObservation takes them, not stored as they are.
      await telemed.processAndStore({ patientId: PATIENT, systolic: 131, diastolic: 77, measuredAt: '2024-03-09T09:00:00Z' } as unknown as TeleObservation);
      const stored = await telemed.getObservationsFor(PATIENT, week);
      expect(stored.map((o) => [o.systolic, o.diastolic])).toEqual([
        [{ value: 126, unit: 'mmHg' }, { value: 70, unit: 'mmHg' }],
        [{ value: 131, unit: 'mmHg' }, { value: 77, unit: 'mmHg' }],
      ]);
    });

    it("refuses a document that is not HL7, or whose metadata names another patient or time, and keeps the registry readable", async () => {
      const { xds, telemed, allEvents } = setup();
      const a = docOf(reading(PATIENT, 150, 95, '2024-03-09T08:00:00Z'));
      const b = docOf(reading(OTHER_PATIENT, 120, 80, '2024-03-09T08:00:00Z'));
      const c = docOf(reading(PATIENT, 150, 95, '2024-03-09T09:00:00Z'));
      expect((await rejectionOf(xds.provideAndRegisterDocument(b.metadata, a.document))).code).toBe('invalid_document');
      expect((await rejectionOf(xds.provideAndRegisterDocument(c.metadata, a.document))).code).toBe('invalid_document');
      expect((await rejectionOf(xds.provideAndRegisterDocument(a.metadata, 'not xml at all'))).code).toBe('invalid_document');
      // A document from outside is a new reading: not in the future, as an upload.
      const later = docOf(reading(PATIENT, 150, 95, '2025-03-09T08:00:00Z'));
      expect((await rejectionOf(xds.provideAndRegisterDocument(later.metadata, later.document))).code).toBe('implausible_observation');
      expect(await allEvents()).toHaveLength(0);
      const { uniqueId } = await xds.provideAndRegisterDocument(a.metadata, a.document, { summary: { systolic: 1, diastolic: 2 } });
      // The values come from the document, not from a summary the caller passed.
      expect(await telemed.getObservationsFor(PATIENT, week)).toEqual([expect.objectContaining({ uniqueId, systolic: { value: 150, unit: 'mmHg' }, diastolic: { value: 95, unit: 'mmHg' } })]);
      expect((await rejectionOf(xds.correctDocument(uniqueId, b.metadata, a.document))).code).toBe('invalid_document');
      await expect(telemed.getObservationsFor(OTHER_PATIENT, week)).rejects.toMatchObject({ code: 'unknown_patient' });
    });
  });
});
