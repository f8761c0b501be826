import { randomUUID } from 'node:crypto';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { InMemoryRegistry } from '../../src/adapters/registry/in-memory-registry';
import { SqliteRegistry } from '../../src/adapters/registry/sqlite-registry';
import type { RecordedEvent } from '../../src/application/ports/event-store';
import type { RegistryReadModel } from '../../src/application/ports/registry-read-model';

/**
 * RegistryReadModel.findAllOf, the patient's whole record (the data export's): current and deprecated rows of one
 * patient, ordered by (service time, uniqueId in code-point order), paged after a position, against the in-memory
 * registry and the SQLite one (PostgreSQL's: test/integration/postgres-registry.int.spec.ts).
 */
const PATIENT = 'p'.padEnd(33, 'a');
const OTHER = 'p'.padEnd(33, 'b');
const T0 = Date.parse('2024-03-10T12:00:00Z') / 1000;
const iso = (epoch: number) => new Date(epoch * 1000).toISOString().replace('.000Z', 'Z');

let position = 0n;
const recorded = (type: string, data: Record<string, unknown>): RecordedEvent => ({
  id: randomUUID(),
  type,
  data,
  metadata: {},
  streamName: `document-${String(data['uniqueId'])}`,
  streamVersion: type === 'DocumentSubmitted' ? 0n : 1n,
  globalPosition: ++position,
  recordedAt: new Date().toISOString(),
});
const submitted = (uniqueId: string, epoch: number, options: { patientKey?: string; replaces?: string } = {}): RecordedEvent =>
  recorded('DocumentSubmitted', {
    uniqueId,
    patientKey: options.patientKey ?? PATIENT,
    repositoryUniqueId: '2.25.1',
    observationId: null,
    creationTime: iso(epoch),
    serviceStartTime: iso(epoch),
    serviceStopTime: iso(epoch),
    mimeType: 'text/xml',
    hash: 'a'.repeat(64),
    size: 100,
    replaces: options.replaces ?? null,
    summary: { systolic: 120, diastolic: 80 },
    content: '',
  });
const deprecated = (uniqueId: string, replacedBy: string): RecordedEvent => recorded('DocumentDeprecated', { uniqueId, replacedBy, deprecatedAt: iso(T0) });
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
