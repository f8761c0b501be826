import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { InMemoryKeyStore } from '../../src/adapters/crypto/key-stores';
import { PatientCipher } from '../../src/adapters/crypto/patient-cipher';
import { consultationDataKey } from '../../src/application/consultation/sealed-consultations';
import { ErasedKeysProjection, KEY_ERASURE_EVENT_TYPES, startErasedKeys } from '../../src/application/erased-keys';
import type { Projector } from '../../src/application/projector';
import type { ReadAllOptions } from '../../src/application/ports/event-store';
import type { PatientKeyStore } from '../../src/application/ports/patient-data-protection';

/**
 * Two hub processes on one event store and one key store, as on PostgreSQL: B erases a patient whose key A holds in
 * its cache (TTL a minute). A's erasure subscriber sees B's PatientErased and drops the key and the plaintexts at
 * once. The key store hands out copies, as SQLite and PostgreSQL do (the in-memory one shares its Buffer, so B's
 * erasure would zero A's cached key behind its back and hide what the cache does).
 */
class CopyingKeyStore implements PatientKeyStore {
  readonly inner = new InMemoryKeyStore();
  /** Set to hold the next get() until released (a read in flight while the erasure is seen). */
  hold: Promise<void> | null = null;
  async get(patientKey: string) {
    const key = await this.inner.get(patientKey);
    if (this.hold) await this.hold;
    return key === null || key === 'erased' ? key : Buffer.from(key);
  }
  async createIfAbsent(patientKey: string, key: Buffer) {
    const stored = await this.inner.createIfAbsent(patientKey, key);
    return stored === 'erased' ? stored : Buffer.from(stored);
  }
  erase(patientKey: string, erasedAt: string) {
    return this.inner.erase(patientKey, erasedAt);
  }
  erasedAt(patientKey: string) {
    return this.inner.erasedAt(patientKey);
  }
  async close() {}
}

const patientErased = (patientKey: string) => ({ id: `erase-${patientKey}`, type: 'PatientErased', data: { patientKey, erasedAt: '2026-03-01T10:00:00Z', by: 'dpo' } });

describe('ErasedKeysProjection: erasures by another process drop the keys cached here', () => {
  const running: Projector[] = [];
  afterEach(async () => {
    for (const p of running.splice(0)) await p.stop();
  });

  const setUp = async () => {
    const store = new InMemoryEventStore();
    const keys = new CopyingKeyStore();
    let now = 0;
    const a = new PatientCipher({ keys, ttlMs: 60_000, now: () => now });
    const b = new PatientCipher({ keys, ttlMs: 60_000, now: () => now });
    const subscriber = (await startErasedKeys(store, a))!;
    running.push(subscriber);
    // B's erasure as PatientErasure does it: the event first, then the key.
    const eraseOnB = async (patientKey: string) => {
      await store.appendToStream(`patient-${patientKey}`, [patientErased(patientKey)], { expectedVersion: 'no_stream' });
      await b.erase(patientKey);
    };
    return { store, keys, a, b, subscriber, eraseOnB, later: (ms: number) => (now += ms) };
  };

  it('A refuses to seal and opens nothing for the patient once it has seen the event, long before its TTL', async () => {
    const { keys, a, subscriber, eraseOnB, later } = await setUp();
    // C: a third process without the subscriber, its key cached as A's is.
    const c = new PatientCipher({ keys, ttlMs: 60_000 });
    await c.seal('pA', 'reading', 'document/0');
    const sealed = await a.seal('pA', 'reading', 'document/1'); // A's key cache holds pA now, and the plaintext
    const other = await a.seal('pB', 'reading', 'document/2');
    expect(a.unopenedSeals).toBe(2);

    await eraseOnB('pA');
    later(1_000); // a second on: the cached key has 59 s to live
    // Without the subscriber a process still seals with the shredded key, for the rest of the TTL:
    expect(await c.seal('pA', 'after the erasure', 'document/9')).toMatch(/^rts-sealed:/);

    await subscriber.catchUp();
    await expect(a.seal('pA', 'another reading', 'document/3')).rejects.toMatchObject({ code: 'patient_erased' });
    await expect(a.digest('pA', 'x', 'hash')).rejects.toMatchObject({ code: 'patient_erased' });
    expect(await a.open('pA', sealed, 'document/1')).toBeNull();
    expect(a.openCached('pA', sealed, 'document/1')).toBeNull();
    expect(a.unopenedSeals).toBe(1); // pA's plaintext gone; pB's kept
    // Another patient is untouched.
    expect(await a.open('pB', other, 'document/2')).toBe('reading');
  });

  it('is woken by the append: the background subscriber drops the key without anyone asking it to catch up', async () => {
    const { a, eraseOnB } = await setUp();
    const sealed = await a.seal('pA', 'reading', 'document/1');
    expect(a.openCached('pA', sealed, 'document/1')).toBe('reading');
    await eraseOnB('pA');
    const until = Date.now() + 2_000;
    while (a.openCached('pA', sealed, 'document/1') !== null && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(a.openCached('pA', sealed, 'document/1')).toBeNull();
    await expect(a.seal('pA', 'again', 'document/2')).rejects.toMatchObject({ code: 'patient_erased' });
  });

  it('drops a consultation\'s key when its texts are erased elsewhere (ConsultationContentErased)', async () => {
    const { store, a, b, subscriber } = await setUp();
    const id = '0b7f4c1e-9a4d-4c55-8f3e-1d2a3b4c5d6e';
    const key = consultationDataKey(id);
    const sealed = await a.seal(key, 'clinical question', `consultation/${id}/clinicalQuestion`);
    await store.appendToStream(`consultation-${id}`, [{ id: 'c-erased', type: 'ConsultationContentErased', data: { consultationId: id, cause: 'requested', erasedAt: '2026-03-01T10:00:00Z' } }]);
    await b.erase(key);
    await subscriber.catchUp();
    expect(await a.open(key, sealed, `consultation/${id}/clinicalQuestion`)).toBeNull();
    await expect(a.seal(key, 'a report', `consultation/${id}/report/diagnosis`)).rejects.toMatchObject({ code: 'patient_erased' });
  });

  it('a live key read from the store while the erasure is under way does not replace what the event said', async () => {
    const { store, keys, a, subscriber } = await setUp();
    // The event is recorded; the erasing process has not deleted the key yet, and A's read of it is in flight.
    let release!: () => void;
    keys.hold = new Promise<void>((resolve) => (release = resolve));
    const inFlight = a.seal('pA', 'reading', 'document/1');
    await store.appendToStream('patient-pA', [patientErased('pA')]);
    await subscriber.catchUp();
    keys.hold = null;
    release();
    await expect(inFlight).rejects.toMatchObject({ code: 'patient_erased' });
    await expect(a.seal('pA', 'again', 'document/2')).rejects.toMatchObject({ code: 'patient_erased' });
  });

  it('starts at the head: erasures recorded before the process started are not replayed into its cache', async () => {
    const store = new InMemoryEventStore();
    await store.appendToStream('patient-pOld', [patientErased('pOld')]);
    const forgotten: string[] = [];
    const projection = await ErasedKeysProjection.atHead(store, { forgetErased: (key) => void forgotten.push(key) });
    expect(await projection.checkpoint()).toBe(await store.headPosition());
    await store.appendToStream('patient-pNew', [patientErased('pNew')]);
    const [event] = await store.readAll({ after: await projection.checkpoint(), maxCount: 10 });
    await projection.apply([event!], event!.globalPosition);
    expect(forgotten).toEqual(['pNew']);
    expect(await projection.checkpoint()).toBe(event!.globalPosition);
  });

  it('reads only the erasure types from the store, never the uploads', async () => {
    const { store, a, subscriber } = await setUp();
    const reads: ReadAllOptions[] = [];
    const readAll = store.readAll.bind(store);
    store.readAll = (options) => (reads.push(options), readAll(options));
    await a.seal('pA', 'reading', 'document/1');
    await store.appendToStream('document-1', [{ id: 'd-1', type: 'DocumentSubmitted', data: { patientKey: 'pA' } }]);
    await subscriber.catchUp();
    expect(reads.length).toBeGreaterThan(0);
    for (const options of reads) expect(options.types).toBe(KEY_ERASURE_EVENT_TYPES);
    expect(a.openCached('pA', 'plain', 'x')).toBe('plain');
    expect(await a.seal('pA', 'still here', 'document/2')).toMatch(/^rts-sealed:/);
  });
});
