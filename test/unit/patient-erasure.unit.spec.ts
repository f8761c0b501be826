import { DateTime } from 'luxon';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { PatientErasure } from '../../src/application/patient-erasure';
import type { PatientDataProtection } from '../../src/application/ports/patient-data-protection';
import { parseCpr } from '../../src/domain/monitoring/cpr';

/** Erasure as the core records it: once, and a repeat says so with the time it was recorded. */
describe('PatientErasure', () => {
  const setUp = () => {
    let now = DateTime.fromISO('2026-03-01T10:00:00Z', { zone: 'utc' });
    const erased = new Set<string>();
    const protection: Pick<PatientDataProtection, 'erase' | 'isErased'> = {
      erase: async (key) => void erased.add(key),
      isErased: async (key) => erased.has(key),
    };
    const store = new InMemoryEventStore();
    let caughtUp = 0;
    const erasure = new PatientErasure({
      store,
      protection: protection as PatientDataProtection,
      patientKeys: { keyFor: (cpr) => `p${String(cpr).replace('-', '')}`, fingerprint: () => 'test' },
      projectors: [{ catchUp: async () => void caughtUp++ }],
      clock: { now: () => now },
    });
    return { erasure, store, erased, later: (minutes: number) => (now = now.plus({ minutes })), caughtUp: () => caughtUp };
  };
  const cpr = parseCpr('251248-1234');

  it('records PatientErased once, deletes the key and catches the projections up', async () => {
    const { erasure, store, erased, caughtUp } = setUp();
    const result = await erasure.erase(cpr, { by: 'dpo', correlationId: 'r-1' });
    expect(result).toEqual({ patientKey: 'p2512481234', erasedAt: '2026-03-01T10:00:00Z', alreadyErased: false });
    expect(erased.has('p2512481234')).toBe(true);
    expect(caughtUp()).toBe(1);
    const { events } = await store.readStream('patient-p2512481234');
    expect(events.map((e) => [e.type, e.data])).toEqual([['PatientErased', { patientKey: 'p2512481234', erasedAt: '2026-03-01T10:00:00Z', by: 'dpo' }]]);
  });

  it('answers a repeat with the time the erasure was recorded, and records nothing new', async () => {
    const { erasure, store, later } = setUp();
    await erasure.erase(cpr, { by: 'dpo' });
    later(90);
    expect(await erasure.erase(cpr, { by: 'someone-else' })).toEqual({ patientKey: 'p2512481234', erasedAt: '2026-03-01T10:00:00Z', alreadyErased: true });
    expect((await store.readStream('patient-p2512481234')).events).toHaveLength(1);
  });

  it('finishes an erasure whose key deletion did not happen (a crash after the event): the recorded time, not yet erased', async () => {
    const { erasure, store, erased, later } = setUp();
    await store.appendToStream('patient-p2512481234', [{ id: 'e-1', type: 'PatientErased', data: { patientKey: 'p2512481234', erasedAt: '2026-02-28T08:00:00Z', by: 'dpo' } }]);
    later(5);
    expect(await erasure.erase(cpr, { by: 'dpo' })).toEqual({ patientKey: 'p2512481234', erasedAt: '2026-02-28T08:00:00Z', alreadyErased: false });
    expect(erased.has('p2512481234')).toBe(true);
  });
});
