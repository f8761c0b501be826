import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DocumentEntryData, DocumentEvent } from '../../src/domain/documents/document-entry';
import { InMemoryRegistry } from '../../src/adapters/registry/in-memory-registry';
import type { RecordedEvent } from '../../src/application/ports/event-store';
import { evolveRegistry, evolveRegistryEntry, evolveReplacedEntry, type RegistryEntryView } from '../../src/application/projections/registry-projection';

const seedXml = readFileSync(join(__dirname, '../fixtures/seed-hl7-example.xml'), 'utf8');

const entry: DocumentEntryData = {
  uniqueId: '2.25.100',
  patientKey: 'p0123456789abcdef0123456789abcdef',
  repositoryUniqueId: '2.25.1',
  observationId: 'obs-1',
  creationTime: '2024-03-10T12:00:00Z',
  serviceStartTime: '2017-05-10T14:50:14Z',
  serviceStopTime: '2017-05-10T14:50:14Z',
  mimeType: 'text/xml',
  classCode: '8716-3',
  typeCode: '55284-4',
  formatCode: 'urn:telemed-rts:hl7:bp:1',
  title: 'Home blood pressure measurement',
  languageCode: 'en',
  hash: 'a'.repeat(64),
  size: seedXml.length,
  replaces: '2.25.50',
};

const submitted = (data: Partial<DocumentEntryData> = {}, content = seedXml): DocumentEvent => ({ type: 'DocumentSubmitted', data: { ...entry, ...data, content } });
const deprecated: DocumentEvent = { type: 'DocumentDeprecated', data: { uniqueId: '2.25.100', replacedBy: '2.25.200', deprecatedAt: '2024-03-11T00:00:00Z' } };

/** given events (folded from null) / then row */
const given = (events: readonly DocumentEvent[]): RegistryEntryView | null => events.reduce<RegistryEntryView | null>(evolveRegistryEntry, null);

const expectedRow: RegistryEntryView = {
  uniqueId: '2.25.100',
  patientKey: 'p0123456789abcdef0123456789abcdef',
  repositoryUniqueId: '2.25.1',
  status: 'Approved',
  creationTime: '2024-03-10T12:00:00Z',
  serviceStartTime: '2017-05-10T14:50:14Z',
  serviceStartEpoch: 1494427814,
  mimeType: 'text/xml',
  hash: 'a'.repeat(64),
  size: seedXml.length,
  replaces: '2.25.50',
  replacedBy: null,
  observationId: 'obs-1',
  systolic: { value: 126, unit: 'mmHg' },
  diastolic: { value: 70, unit: 'mmHg' },
};

describe('registry projection: evolveRegistryEntry', () => {
  it('submitted: a row with the values parsed from the HL7 content and the epoch of the service time', () => {
    expect(given([submitted()])).toEqual(expectedRow);
  });

  it('keeps no copy of the content or of the patient identifier in the row', () => {
    const row = JSON.stringify(given([submitted()]));
    expect(row).not.toContain('ClinicalDocument');
    expect(row).not.toContain('251248');
  });

  it('computes the epoch from an offset service time as an instant', () => {
    expect(given([submitted({ serviceStartTime: '2017-05-10T16:50:14+02:00' })])?.serviceStartEpoch).toBe(1494427814);
  });

  it('takes the values from the summary when the submitter gave one, without parsing', () => {
    const row = given([submitted({ summary: { systolic: 131, diastolic: 77 } }, 'not parsed')]);
    expect([row?.systolic, row?.diastolic]).toEqual([
      { value: 131, unit: 'mmHg' },
      { value: 77, unit: 'mmHg' },
    ]);
  });

  it('deprecated: replacedBy recorded, the row still Approved (current) until its replacement is registered', () => {
    expect(given([submitted(), deprecated])).toEqual({ ...expectedRow, replacedBy: '2.25.200' });
  });

  it('deprecated when the row is Deprecated already (its replacement came first, or a row from before): unchanged', () => {
    const done = { ...expectedRow, status: 'Deprecated', replacedBy: '2.25.200' } as const;
    expect(evolveRegistryEntry(done, deprecated)).toBe(done);
  });

  it('deprecated before submitted: no row', () => {
    expect(given([deprecated])).toBeNull();
  });

  it('a second submission of the same uniqueId does not overwrite the row', () => {
    const other = seedXml.replace('126.0', '140.0');
    const row = given([submitted(), submitted({ hash: 'b'.repeat(64), observationId: 'obs-2', serviceStartTime: '2020-01-01T00:00:00Z' }, other)]);
    expect(row).toEqual(expectedRow);
  });

  it('a resubmission after a deprecation does not overwrite the row', () => {
    expect(given([submitted(), deprecated, submitted()])).toEqual({ ...expectedRow, replacedBy: '2.25.200' });
  });

  it('throws on content that is not a valid HL7 document rather than making a row without values (the write side never stores such content)', () => {
    expect(() => given([submitted({}, '<ClinicalDocument/>')])).toThrow(expect.objectContaining({ code: 'invalid_document' }));
  });
});

describe('registry projection: a correction (XDS RPLC) swaps the two readings in one step, in either order', () => {
  const OLD = '2.25.100';
  const NEW = '2.25.200';
  const original = submitted({ uniqueId: OLD, replaces: null });
  const deprecation: DocumentEvent = { type: 'DocumentDeprecated', data: { uniqueId: OLD, replacedBy: NEW, deprecatedAt: '2024-03-11T00:00:00Z' } };
  const replacement = submitted({ uniqueId: NEW, replaces: OLD, hash: 'b'.repeat(64), observationId: null, summary: { systolic: 128, diastolic: 72 } });

  /** Rows by uniqueId after each event, as an adapter keeps them (evolveRegistry over a map). */
  const steps = (events: readonly DocumentEvent[], start: ReadonlyMap<string, RegistryEntryView> = new Map()) => {
    const rows = new Map(start);
    return events.map((event) => {
      for (const row of evolveRegistry((id) => rows.get(id) ?? null, event)) rows.set(row.uniqueId, row);
      return new Map(rows);
    });
  };
  /** What a query answers: the Approved rows. */
  const current = (rows: ReadonlyMap<string, RegistryEntryView>) => [...rows.values()].filter((r) => r.status === 'Approved').map((r) => r.uniqueId);

  it("deprecation, then replacement (the write side's order): the old reading in queries up to the very step that adds the new one", () => {
    const after = steps([original, deprecation, replacement]);
    expect(after.map(current)).toEqual([[OLD], [OLD], [NEW]]);
    expect(after[1]!.get(OLD)).toEqual({ ...expectedRow, replaces: null, replacedBy: NEW });
    expect(after[2]!.get(OLD)).toEqual({ ...expectedRow, replaces: null, status: 'Deprecated', replacedBy: NEW });
    expect(after[2]!.get(NEW)).toMatchObject({ status: 'Approved', replaces: OLD, replacedBy: null, systolic: { value: 128, unit: 'mmHg' } });
  });

  it('replacement, then deprecation: one reading at every step, and the same rows at the end', () => {
    const inOrder = steps([original, deprecation, replacement]).at(-1);
    const reversed = steps([original, replacement, deprecation]);
    expect(reversed.map(current)).toEqual([[OLD], [NEW], [NEW]]);
    expect(reversed.at(-1)).toEqual(inOrder);
  });

  it("evolveRegistry returns only the rows that changed, the document's own first", () => {
    const [, pending] = steps([original, deprecation]);
    expect(evolveRegistry((id) => pending!.get(id) ?? null, replacement).map((r) => [r.uniqueId, r.status])).toEqual([
      [NEW, 'Approved'],
      [OLD, 'Deprecated'],
    ]);
    expect(evolveRegistry((id) => pending!.get(id) ?? null, deprecation)).toEqual([]); // a repeat changes nothing
  });

  it('a deprecation whose replacement is never registered (the second append failed): the old reading stays in queries', () => {
    const [, pending] = steps([original, deprecation]);
    expect(current(pending!)).toEqual([OLD]);
    expect(pending!.get(OLD)?.replacedBy).toBe(NEW); // what the next correction completes (XdsBackend.correctBuilt)
  });

  it('a replacement naming a document whose deprecation recorded another successor does not take it out of queries', () => {
    const [, pending] = steps([original, deprecation]);
    const intruder = submitted({ uniqueId: '2.25.300', replaces: OLD, hash: 'c'.repeat(64) });
    expect(evolveReplacedEntry(pending!.get(OLD)!, intruder as Extract<DocumentEvent, { type: 'DocumentSubmitted' }>)).toBe(pending!.get(OLD));
  });

  it('a row Deprecated before this rule (stores written by earlier versions) stays as it is', () => {
    const old = { ...expectedRow, uniqueId: OLD, replaces: null, status: 'Deprecated', replacedBy: NEW } as const;
    const after = steps([deprecation, replacement], new Map([[OLD, old]]));
    expect(after.map((rows) => rows.get(OLD))).toEqual([old, old]);
  });

  it("a replacement whose old row is not there (an erased patient's, another registry's): only its own row", () => {
    expect(evolveRegistry(() => null, replacement).map((r) => r.uniqueId)).toEqual([NEW]);
  });
});

describe('InMemoryRegistry (the library\'s registry): an erased patient', () => {
  // The rule the SQLite and PostgreSQL registries are held to (sqlite-registry-rebuild, postgres-registry): forgetting a
  // patient removes their rows, and a document of theirs later in the events (sealed by a hub that still held the key)
  // gets no row either. Nothing held the in-memory registry, the one the library runs on, to it.
  const ERASED = entry.patientKey;
  const OTHER = 'p'.padEnd(33, 'y');
  const recorded = (event: DocumentEvent, position: bigint): RecordedEvent => ({
    id: `e-${position}`,
    type: event.type,
    data: event.data,
    metadata: {},
    streamName: `document-${event.data.uniqueId}`,
    streamVersion: 0n,
    globalPosition: position,
    recordedAt: '2024-03-10T12:00:00Z',
  });

  it('forgetPatient removes their rows, keeps the others, and a later document of theirs gets no row', async () => {
    const registry = new InMemoryRegistry();
    await registry.apply([recorded(submitted({ uniqueId: '2.25.901', replaces: null }), 1n), recorded(submitted({ uniqueId: '2.25.902', replaces: null, patientKey: OTHER }), 2n)], 2n);
    await registry.forgetPatient(ERASED);
    expect(await registry.knowsPatient(ERASED)).toBe(false);
    expect(await registry.get('2.25.901')).toBeNull();
    expect(await registry.get('2.25.902')).not.toBeNull();
    await registry.apply([recorded(submitted({ uniqueId: '2.25.903', replaces: null }), 3n), recorded(submitted({ uniqueId: '2.25.904', replaces: null, patientKey: OTHER }), 4n)], 4n);
    expect(await registry.get('2.25.903')).toBeNull();
    expect(await registry.knowsPatient(ERASED)).toBe(false);
    expect(await registry.get('2.25.904')).not.toBeNull();
  });
});
