import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { InMemoryRegistry } from '../../src/adapters/registry/in-memory-registry';
import { SqliteRegistry } from '../../src/adapters/registry/sqlite-registry';
import { REGISTRY_T0, registryEvents } from '../support/registry-events';
import type { RecordedEvent } from '../../src/application/ports/event-store';
import type { RegistryReadModel } from '../../src/application/ports/registry-read-model';

/**
 * RegistryReadModel.findAllOf, the patient's whole record (the data export's): current and deprecated rows of one
 * patient, ordered by (service time, uniqueId in code-point order), paged after a position, against the in-memory
 * registry and the SQLite one (PostgreSQL's: test/integration/postgres-registry.int.spec.ts).
 */
const PATIENT = 'p'.padEnd(33, 'a');
const OTHER = 'p'.padEnd(33, 'b');
const T0 = REGISTRY_T0;
const events = registryEvents();
const submitted = (uniqueId: string, epoch: number, options: { patientKey?: string; replaces?: string } = {}): RecordedEvent =>
  events.submitted(uniqueId, epoch, { patientKey: options.patientKey ?? PATIENT, replaces: options.replaces ?? null });
const { deprecated } = events;
const ids = (rows: readonly { uniqueId: string }[]) => rows.map((r) => r.uniqueId);

const registries: [string, () => { registry: RegistryReadModel; close(): Promise<void> }][] = [
  ['in memory', () => ({ registry: new InMemoryRegistry(), close: async () => undefined })],
  [
    'SQLite',
    () => {
      const store = SqliteEventStore.open({ file: ':memory:' });
      return { registry: new SqliteRegistry(store), close: () => store.close() };
    },
  ],
];

describe.each(registries)('findAllOf, %s', (_name, open) => {
  it('gives every row of the patient, deprecated ones too, by time then uniqueId, page by page', async () => {
    const { registry, close } = open();
    try {
      const batch = [
        submitted('2.25.33', T0 + 120),
        submitted('2.25.4', T0 + 60), // same second as .36: '2.25.36' < '2.25.4' by code points
        submitted('2.25.36', T0 + 60),
        submitted('2.25.31', T0 - 86_400 * 400), // long before: no interval limit
        submitted('2.25.35', T0 + 60, { patientKey: OTHER }),
        submitted('2.25.37', T0 + 200, { replaces: '2.25.33' }),
        deprecated('2.25.33', '2.25.37'),
      ];
      await registry.apply(batch, batch.at(-1)!.globalPosition);
      const all = await registry.findAllOf(PATIENT, null, 100);
      expect(ids(all)).toEqual(['2.25.31', '2.25.36', '2.25.4', '2.25.33', '2.25.37']);
      expect(all.find((r) => r.uniqueId === '2.25.33')).toMatchObject({ status: 'Deprecated', replacedBy: '2.25.37' });
      expect(all.find((r) => r.uniqueId === '2.25.37')).toMatchObject({ status: 'Approved', replaces: '2.25.33' });
      // Paging after the last row of a page: nothing skipped or repeated, also within one second.
      const first = await registry.findAllOf(PATIENT, null, 2);
      expect(ids(first)).toEqual(['2.25.31', '2.25.36']);
      const last = first.at(-1)!;
      expect(ids(await registry.findAllOf(PATIENT, { serviceStartEpoch: last.serviceStartEpoch, uniqueId: last.uniqueId }, 2))).toEqual(['2.25.4', '2.25.33']);
      expect(ids(await registry.findAllOf(OTHER, null, 100))).toEqual(['2.25.35']);
      expect(await registry.findAllOf('p'.padEnd(33, 'c'), null, 100)).toEqual([]);
    } finally {
      await close();
    }
  });
});
