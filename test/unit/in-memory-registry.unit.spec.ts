import { InMemoryRegistry } from '../../src/adapters/registry/in-memory-registry';
import { REGISTRY_T0, registryEvents } from '../support/registry-events';
import type { RecordedEvent } from '../../src/application/ports/event-store';
import { ProjectionBehind } from '../../src/application/projector';
import type { RegistryPosition } from '../../src/application/ports/registry-read-model';
import { evolveRegistry, type RegistryEntryView } from '../../src/application/projections/registry-projection';
import { isDocumentEvent, type DocumentEvent } from '../../src/domain/documents/document-entry';

/**
 * InMemoryRegistry, the registry of the library and of the EventStoreDB profile without PostgreSQL (rebuilt from $all
 * at start): an apply and a patient's queries cost what the patients concerned hold, not every row of the registry,
 * with the results, orders and snapshots of the naive model below (every row in one map, copied whole per apply,
 * filtered and sorted per query: what the class was until 2026-12-06).
 */
const T0 = REGISTRY_T0;
const iso = (epoch: number) => new Date(epoch * 1000).toISOString().replace('.000Z', 'Z');
const patient = (c: string) => 'p'.padEnd(33, c);
const A = patient('a');
const B = patient('b');
const C = patient('c');

const events = registryEvents();
const submitted = (uniqueId: string, patientKey: string, epoch: number, replaces: string | null = null, content = ''): RecordedEvent =>
  events.submitted(uniqueId, epoch, { patientKey, replaces, content });
const { deprecated } = events;
const apply = (registry: InMemoryRegistry, events: readonly RecordedEvent[]) => registry.apply(events, events.at(-1)?.globalPosition ?? 0n);
const ids = (rows: readonly { uniqueId: string }[]) => rows.map((r) => r.uniqueId);

/** The naive registry: the whole map copied per apply, every row filtered and sorted per query (code-point order). */
class NaiveRegistry {
  rows = new Map<string, RegistryEntryView>();
  readonly erased = new Set<string>();
  apply(events: readonly RecordedEvent[]): void {
    const next = new Map(this.rows);
    for (const e of events) {
      if (!isDocumentEvent(e)) continue;
      const event = { type: e.type, data: e.data } as DocumentEvent;
      if (event.type === 'DocumentSubmitted' && this.erased.has(event.data.patientKey)) continue;
      for (const row of evolveRegistry((id) => next.get(id) ?? null, event)) next.set(row.uniqueId, row);
    }
    this.rows = next;
  }
  private static byPosition = (a: RegistryPosition, b: RegistryPosition): number =>
    a.serviceStartEpoch - b.serviceStartEpoch || (a.uniqueId < b.uniqueId ? -1 : a.uniqueId > b.uniqueId ? 1 : 0);
  findCurrent(patientKey: string, fromEpoch: number, toEpoch: number, limit: number): RegistryEntryView[] {
    return [...this.rows.values()]
      .filter((r) => r.patientKey === patientKey && r.status === 'Approved' && r.serviceStartEpoch >= fromEpoch && r.serviceStartEpoch < toEpoch)
      .sort(NaiveRegistry.byPosition)
      .slice(0, limit);
  }
  findAllOf(patientKey: string, after: RegistryPosition | null, limit: number): RegistryEntryView[] {
    return [...this.rows.values()]
      .filter((r) => r.patientKey === patientKey && (after === null || NaiveRegistry.byPosition(r, after) > 0))
      .sort(NaiveRegistry.byPosition)
      .slice(0, limit);
  }
  forgetPatient(patientKey: string): void {
    this.rows = new Map([...this.rows].filter(([, r]) => r.patientKey !== patientKey));
    this.erased.add(patientKey);
  }
}

/** How many entries the maps iterated while `work` ran held, in all (each map counted whole, as an iteration may read it). */
const mapEntriesIterated = async (work: () => Promise<unknown>): Promise<number> => {
  let entries = 0;
  const proto = Map.prototype as unknown as Record<PropertyKey, (...args: unknown[]) => unknown>;
  const names: PropertyKey[] = [Symbol.iterator, 'entries', 'values', 'keys', 'forEach'];
  const originals = names.map((name) => [name, proto[name]!] as const);
  for (const [name, original] of originals) {
    proto[name] = function (this: Map<unknown, unknown>, ...args: unknown[]) {
      entries += this.size;
      return original.apply(this, args);
    };
  }
  try {
    await work();
  } finally {
    for (const [name, original] of originals) proto[name] = original;
  }
  return entries;
};

describe('InMemoryRegistry: the work of an apply and of a query is that of the patients concerned', () => {
  it("neither an apply nor A's queries nor A's erasure go through the rows of C, who holds 2,000", async () => {
    const registry = new InMemoryRegistry();
    await apply(registry, Array.from({ length: 2_000 }, (_, i) => submitted(`2.25.3${i}`, C, T0 + i)));
    await apply(registry, [submitted('2.25.10', A, T0), submitted('2.25.20', B, T0)]);
    // The whole-map copy per apply (new Map(rows)) and the scan of every row per query read C's 2,000 rows each time.
    expect(await mapEntriesIterated(() => apply(registry, [submitted('2.25.11', A, T0 + 1), submitted('2.25.21', B, T0 + 1)]))).toBeLessThan(100);
    expect(await mapEntriesIterated(() => registry.findCurrent(A, T0, T0 + 86_400, 100))).toBeLessThan(100);
    expect(await mapEntriesIterated(() => registry.findAllOf(A, null, 100))).toBeLessThan(100);
    expect(await mapEntriesIterated(() => registry.allEntriesOf(A, 100))).toBeLessThan(100);
    expect(await mapEntriesIterated(() => registry.knowsPatient(A))).toBeLessThan(100);
    expect(await mapEntriesIterated(() => registry.forgetPatient(B))).toBeLessThan(100);
    // And the results are still those of every row.
    expect(ids(await registry.findCurrent(A, T0, T0 + 86_400, 100))).toEqual(['2.25.10', '2.25.11']);
    expect(await registry.knowsPatient(B)).toBe(false);
    expect(await registry.get('2.25.21')).toBeNull();
    expect((await registry.findAllOf(C, null, 10_000)).length).toBe(2_000);
  });

  it("a snapshot of A's record stays as it was through later applies of B's and A's readings; C's rows stay the same objects", async () => {
    const registry = new InMemoryRegistry();
    await apply(registry, [submitted('2.25.10', A, T0), submitted('2.25.11', A, T0 + 60), submitted('2.25.30', C, T0), submitted('2.25.31', C, T0 + 1)]);
    const snapshot = await registry.allEntriesOf(A, 100);
    const copy = snapshot.map((r) => ({ ...r }));
    const cRows = await registry.findAllOf(C, null, 100);
    // A correction of A's first reading (both appends), a new reading of A's and one of B's.
    await apply(registry, [deprecated('2.25.10', '2.25.12'), submitted('2.25.12', A, T0 + 5, '2.25.10'), submitted('2.25.13', A, T0 - 60), submitted('2.25.20', B, T0)]);
    expect(snapshot).toEqual(copy);
    expect(ids(snapshot)).toEqual(['2.25.10', '2.25.11']);
    expect(snapshot[0]!.status).toBe('Approved');
    const now = await registry.allEntriesOf(A, 100);
    expect(ids(now)).toEqual(['2.25.13', '2.25.10', '2.25.12', '2.25.11']);
    expect(now[1]).toMatchObject({ status: 'Deprecated', replacedBy: '2.25.12' });
    const cAfter = await registry.findAllOf(C, null, 100);
    expect(cAfter).toHaveLength(2);
    cAfter.forEach((row, i) => expect(row).toBe(cRows[i]));
    expect(await registry.get('2.25.30')).toBe(cRows[0]);
  });

  it('an apply with an event that cannot be projected changes nothing: no row, no checkpoint', async () => {
    const registry = new InMemoryRegistry();
    await registry.apply([submitted('2.25.10', A, T0)], 1n);
    const before = await registry.allEntriesOf(A, 100);
    await expect(registry.apply([submitted('2.25.11', A, T0 + 1), deprecated('2.25.10', '2.25.12'), submitted('2.25.12', A, T0 + 2, null, 'not HL7')], 9n)).rejects.toThrow();
    expect(await registry.checkpoint()).toBe(1n);
    expect(await registry.get('2.25.11')).toBeNull();
    expect(await registry.get('2.25.10')).toBe(before[0]);
    expect(await registry.allEntriesOf(A, 100)).toEqual(before);
  });

  it('a page read before a rebuild reset it is refused (ProjectionBehind) and applies nothing, as the SQLite and PostgreSQL registries do', async () => {
    const registry = new InMemoryRegistry();
    const first = [submitted('2.25.901', A, T0)];
    await apply(registry, first);
    const readAfter = await registry.checkpoint();
    await registry.reset(); // a rebuild starts over meanwhile
    const stale = [submitted('2.25.902', A, T0 + 60)];
    await expect(registry.apply(stale, stale[0]!.globalPosition, readAfter)).rejects.toBeInstanceOf(ProjectionBehind);
    expect(await registry.get('2.25.902')).toBeNull();
    expect(await registry.checkpoint()).toBe(0n);
  });

  it('findCurrent orders the readings of one second by uniqueId in code points, as findAllOf and the SQLite and PostgreSQL registries do', async () => {
    // localeCompare put '2_1' before '2.1' ('_' sorts before '.' in the locale's order, after it in code points). The two
    // orders agree on OIDs, the only uniqueIds the hub makes; the SQL registries order by code points for all.
    const registry = new InMemoryRegistry();
    await apply(registry, [submitted('2_1', A, T0), submitted('2.1', A, T0), submitted('2.10', A, T0), submitted('2.2', A, T0 - 1)]);
    expect(ids(await registry.findCurrent(A, T0 - 1, T0 + 1, 10))).toEqual(['2.2', '2.1', '2.10', '2_1']);
    expect(ids(await registry.findAllOf(A, null, 10))).toEqual(['2.2', '2.1', '2.10', '2_1']);
  });

  it('gives the naive registry\'s results through submissions, corrections in either order, repeats, erasures and any window, page and limit', async () => {
    let seed = 7;
    const random = (n: number): number => {
      // mulberry32: a fixed sequence, the same in every run
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return (((t ^ (t >>> 14)) >>> 0) / 2 ** 32) * n | 0;
    };
    const registry = new InMemoryRegistry();
    const naive = new NaiveRegistry();
    const patients = [A, B, C, patient('d')];
    const made: { id: string; patientKey: string; epoch: number }[] = [];
    let next = 0;
    for (let round = 0; round < 60; round++) {
      const batch: RecordedEvent[] = [];
      for (let k = random(12); k >= 0; k--) {
        const kind = random(10);
        const old = made.length > 0 ? made[random(made.length)]! : null;
        if (kind < 6 || old === null) {
          const reading = { id: `2.25.${random(3) === 0 ? next++ : 1000 + next++}`, patientKey: patients[random(patients.length)]!, epoch: T0 + random(40) * 30 };
          made.push(reading);
          batch.push(submitted(reading.id, reading.patientKey, reading.epoch));
        } else if (kind < 8) {
          // A correction: deprecation and replacement, in the write side's order or the other, in one batch or two.
          const successor = { id: `2.25.${next++}`, patientKey: old.patientKey, epoch: old.epoch + random(3) * 30 };
          made.push(successor);
          const pair = [deprecated(old.id, successor.id), submitted(successor.id, successor.patientKey, successor.epoch, old.id)];
          batch.push(...(kind === 6 ? pair : pair.reverse()));
        } else if (kind === 8) {
          batch.push(submitted(old.id, old.patientKey, old.epoch + 1)); // a repeat: the row is kept
        } else {
          batch.push(deprecated(old.id, `2.25.${next++}`)); // a successor never registered
        }
      }
      await apply(registry, batch);
      naive.apply(batch);
      if (random(15) === 0) {
        const gone = patients[random(patients.length)]!;
        await registry.forgetPatient(gone);
        naive.forgetPatient(gone);
      }
      for (const key of [...patients, patient('z')]) {
        const from = T0 + random(50) * 30 - 300;
        const to = from + random(30) * 30;
        const limit = [0, 1, 3, 100][random(4)]!;
        expect(await registry.findCurrent(key, from, to, limit)).toEqual(naive.findCurrent(key, from, to, limit));
        const all = naive.findAllOf(key, null, Number.POSITIVE_INFINITY);
        expect(await registry.allEntriesOf(key, 10)).toEqual(all);
        expect(await registry.knowsPatient(key)).toBe(all.length > 0);
        const pivot = all.length > 0 ? all[random(all.length)]! : null;
        const after = pivot && (random(2) === 0 ? pivot : { serviceStartEpoch: pivot.serviceStartEpoch, uniqueId: `${pivot.uniqueId}5` });
        expect(await registry.findAllOf(key, after, limit)).toEqual(naive.findAllOf(key, after, limit));
      }
      for (const { id } of made) expect(await registry.get(id)).toEqual(naive.rows.get(id) ?? null);
    }
    await registry.forgetPatient(A);
    await registry.reset();
    expect(await registry.checkpoint()).toBe(0n);
    for (const key of patients) expect(await registry.knowsPatient(key)).toBe(false);
    // After a reset no patient is erased any more: their documents get rows again.
    await apply(registry, [submitted('2.25.999999', A, T0)]);
    expect(ids(await registry.findCurrent(A, T0, T0 + 1, 10))).toEqual(['2.25.999999']);
  });
});
