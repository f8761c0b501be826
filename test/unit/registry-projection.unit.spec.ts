import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DocumentEntryData, DocumentEvent } from '../../src/domain/documents/document-entry';
import { evolveRegistryEntry, type RegistryEntryView } from '../../src/application/projections/registry-projection';

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

  it('deprecated: status Deprecated and replacedBy, everything else kept', () => {
    expect(given([submitted(), deprecated])).toEqual({ ...expectedRow, status: 'Deprecated', replacedBy: '2.25.200' });
  });

  it('deprecated before submitted: no row', () => {
    expect(given([deprecated])).toBeNull();
  });

  it('a second submission of the same uniqueId does not overwrite the row', () => {
    const other = seedXml.replace('126.0', '140.0');
    const row = given([submitted(), submitted({ hash: 'b'.repeat(64), observationId: 'obs-2', serviceStartTime: '2020-01-01T00:00:00Z' }, other)]);
    expect(row).toEqual(expectedRow);
  });

  it('a resubmission after a deprecation does not bring the document back', () => {
    expect(given([submitted(), deprecated, submitted()])?.status).toBe('Deprecated');
  });

  it('throws on content that is not a valid HL7 document rather than making a row without values (the write side never stores such content)', () => {
    expect(() => given([submitted({}, '<ClinicalDocument/>')])).toThrow(expect.objectContaining({ code: 'invalid_document' }));
  });
});
