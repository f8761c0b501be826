import fc from 'fast-check';
import { DateTime } from 'luxon';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cpr } from '../../src/domain/monitoring/cpr';
import type { Quantity, TeleObservation } from '../../src/domain/monitoring/tele-observation';
import {
  Director,
  HL7Builder,
  HL7_TS_FORMAT,
  MetadataBuilder,
  escapeXmlAttribute,
  formatHl7Number,
  withoutEffectiveTimeOffset,
  type ObservationBuilder,
} from '../../src/domain/documents/hl7';

const seedXml = readFileSync(join(__dirname, '../fixtures/seed-hl7-example.xml'), 'utf8');

/** The seed's `new TeleObservation("251248-1234", 126.0, 70.0)`, at the time of its HL7 example. */
const seedObservation: TeleObservation = {
  patientId: '251248-1234' as Cpr,
  systolic: { value: 126, unit: 'mmHg' },
  diastolic: { value: 70, unit: 'mmHg' },
  measuredAt: '2017-05-10T14:50:14Z',
};

const withoutWhitespaceBetweenTags = (xml: string): string => xml.replace(/>\s+</g, '><').trim();

const hl7Of = (obs: TeleObservation): string => {
  const builder = new HL7Builder();
  Director.construct(obs, builder);
  return builder.getResult();
};

describe('Director', () => {
  it('walks header, systolic, diastolic in that order with the observation parts', () => {
    const calls: unknown[][] = [];
    const recorder: ObservationBuilder = {
      buildHeader: (patientId: Cpr, measuredAt: string) => void calls.push(['header', patientId, measuredAt]),
      buildSystolic: (q: Quantity) => void calls.push(['systolic', q.value]),
      buildDiastolic: (q: Quantity) => void calls.push(['diastolic', q.value]),
    };
    Director.construct(seedObservation, recorder);
    expect(calls).toEqual([
      ['header', '251248-1234', '2017-05-10T14:50:14Z'],
      ['systolic', 126],
      ['diastolic', 70],
    ]);
  });
});

describe('HL7Builder', () => {
  // The seed's example, but for effectiveTime's offset: the builder says the time is UTC (`+0000`), where the seed's
  // offset-less form reads, in HL7, as the sender's local time.
  const seedXmlWithOffset = seedXml.replace('<effectiveTime value="20170510145014"/>', '<effectiveTime value="20170510145014+0000"/>');

  it("writes the seed's own HL7 example for the seed's observation (modulo whitespace), with effectiveTime's offset", () => {
    expect(seedXmlWithOffset).not.toBe(seedXml);
    expect(withoutWhitespaceBetweenTags(hl7Of(seedObservation))).toBe(withoutWhitespaceBetweenTags(seedXmlWithOffset));
  });

  it('writes byte for byte the same layout as the seed fixture, so document hashes are stable', () => {
    expect(hl7Of(seedObservation)).toBe(seedXmlWithOffset);
  });

  it('writes effectiveTime in UTC with the offset +0000, converting a measuredAt given with an offset', () => {
    const xml = hl7Of({ ...seedObservation, measuredAt: '2017-05-10T16:50:14+02:00' });
    expect(xml).toContain('<effectiveTime value="20170510145014+0000"/>');
  });

  it("writes the safety review's reading, 00:30 on 1 December in Copenhagen, as 23:30 UTC said to be UTC", () => {
    const xml = hl7Of({ ...seedObservation, measuredAt: '2026-12-01T00:30:00+01:00' });
    expect(xml).toContain('<effectiveTime value="20261130233000+0000"/>');
    expect(xml).not.toContain('<effectiveTime value="20261130233000"/>');
  });

  it('writes effectiveTime as HL7_TS_FORMAT spells it (luxon), for any instant', () => {
    fc.assert(
      fc.property(fc.integer({ min: DateTime.utc(1000, 1, 1).toSeconds(), max: DateTime.utc(9999, 12, 31, 23, 59, 59).toSeconds() }), (s) => {
        const at = DateTime.fromSeconds(s, { zone: 'utc' });
        const xml = hl7Of({ ...seedObservation, measuredAt: at.toISO({ suppressMilliseconds: true })! });
        expect(xml).toContain(`<effectiveTime value="${at.toFormat(HL7_TS_FORMAT)}"/>`);
        expect(at.toFormat(HL7_TS_FORMAT)).toMatch(/^\d{14}\+0000$/);
      }),
      { numRuns: 300 },
    );
  });

  it('gives back the bytes earlier builds wrote (no offset), which documents stored then still have', () => {
    expect(withoutEffectiveTimeOffset(hl7Of(seedObservation))).toBe(seedXml);
    const copenhagen = hl7Of({ ...seedObservation, measuredAt: '2026-12-01T00:30:00+01:00' });
    expect(withoutEffectiveTimeOffset(copenhagen)).toBe(copenhagen.replace('20261130233000+0000', '20261130233000'));
    // Not a document of the builder's layout: nothing to give.
    expect(withoutEffectiveTimeOffset(seedXml)).toBeNull();
    expect(withoutEffectiveTimeOffset(seedXml.replace('20170510145014', '20170510145014+0100'))).toBeNull();
  });

  it('writes integers with one decimal and other values in their shortest exact form', () => {
    const xml = hl7Of({ ...seedObservation, systolic: { value: 126.5, unit: 'mmHg' }, diastolic: { value: 70.25, unit: 'mmHg' } });
    expect(xml).toContain('<value unit="mm(Hg)" value="126.5"/>');
    expect(xml).toContain('<value unit="mm(Hg)" value="70.25"/>');
    expect(formatHl7Number(70)).toBe('70.0');
    expect(formatHl7Number(0.1 + 0.2)).toBe('0.30000000000000004');
  });

  it('escapes the five XML special characters in attribute values', () => {
    expect(escapeXmlAttribute(`a&b<c>d"e'f`)).toBe('a&amp;b&lt;c&gt;d&quot;e&apos;f');
    expect(escapeXmlAttribute('&amp;')).toBe('&amp;amp;');
  });

  it('refuses to give a result before the Director has built every part', () => {
    const builder = new HL7Builder();
    builder.buildHeader(seedObservation.patientId, seedObservation.measuredAt);
    builder.buildSystolic(seedObservation.systolic);
    expect(() => builder.getResult()).toThrow(/before Director.construct/);
  });

  it.each(['header', 'systolic', 'diastolic'] as const)('refuses to give a document without its %s', (missing) => {
    const builder = new HL7Builder();
    if (missing !== 'header') builder.buildHeader(seedObservation.patientId, seedObservation.measuredAt);
    if (missing !== 'systolic') builder.buildSystolic(seedObservation.systolic);
    if (missing !== 'diastolic') builder.buildDiastolic(seedObservation.diastolic);
    expect(() => builder.getResult()).toThrow(/before Director.construct/);
  });

  it('refuses a measuredAt that is not a date-time', () => {
    expect(() => new HL7Builder().buildHeader(seedObservation.patientId, 'yesterday')).toThrow(/measuredAt/);
  });
});

describe('MetadataBuilder', () => {
  it('gives patient, service times and the fixed document codes of the observation', () => {
    const builder = new MetadataBuilder();
    Director.construct(seedObservation, builder);
    expect(builder.getResult()).toEqual({
      patientId: '251248-1234',
      serviceStartTime: '2017-05-10T14:50:14Z',
      serviceStopTime: '2017-05-10T14:50:14Z',
      mimeType: 'text/xml',
      classCode: '8716-3',
      typeCode: '55284-4',
      formatCode: 'urn:telemed-rts:hl7:bp:1',
      title: 'Home blood pressure measurement',
      languageCode: 'en',
    });
  });

  it('leaves submission-time fields to the application', () => {
    const builder = new MetadataBuilder();
    Director.construct(seedObservation, builder);
    const keys = Object.keys(builder.getResult());
    for (const later of ['creationTime', 'uniqueId', 'repositoryUniqueId', 'hash', 'size']) expect(keys).not.toContain(later);
  });

  it('refuses to give a result before the header is built', () => {
    expect(() => new MetadataBuilder().getResult()).toThrow(/before Director.construct/);
  });
});
