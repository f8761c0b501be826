import fc from 'fast-check';
import { DateTime } from 'luxon';
import { isCpr, type Cpr } from '../../src/domain/monitoring/cpr';
import { toIsoSeconds, type TeleObservation } from '../../src/domain/monitoring/tele-observation';
import { Director, HL7Builder, MetadataBuilder, parseHl7Observation } from '../../src/domain/documents/hl7';

const two = (n: number) => String(n).padStart(2, '0');

/**
 * Valid CPR numbers: a birth date and a serial whose first digit puts that date in its century
 * (0-3: 1900s; 4 and 9: 2000-2036 or 1937-1999; 5-8: 2000-2057 or 1858-1899).
 */
const cprArb: fc.Arbitrary<Cpr> = fc
  .oneof(
    fc.record({ from: fc.constant(1900), to: fc.constant(1999), s1: fc.integer({ min: 0, max: 3 }) }),
    fc.record({ from: fc.constant(2000), to: fc.constant(2036), s1: fc.constantFrom(4, 9) }),
    fc.record({ from: fc.constant(1937), to: fc.constant(1999), s1: fc.constantFrom(4, 9) }),
    fc.record({ from: fc.constant(2000), to: fc.constant(2057), s1: fc.integer({ min: 5, max: 8 }) }),
    fc.record({ from: fc.constant(1858), to: fc.constant(1899), s1: fc.integer({ min: 5, max: 8 }) }),
  )
  .chain(({ from, to, s1 }) =>
    fc.tuple(
      fc.date({ min: new Date(Date.UTC(from, 0, 1)), max: new Date(Date.UTC(to, 11, 31)), noInvalidDate: true }),
      fc.constant(s1),
      fc.integer({ min: 0, max: 999 }),
    ),
  )
  .map(([d, s1, rest]) => `${two(d.getUTCDate())}${two(d.getUTCMonth() + 1)}${two(d.getUTCFullYear() % 100)}-${s1}${String(rest).padStart(3, '0')}` as Cpr);

/** Plausible readings in tenths of mmHg (so one-decimal values occur), systolic strictly above diastolic. */
const pressuresArb = fc
  .integer({ min: 200, max: 2000 })
  .chain((dia) => fc.tuple(fc.integer({ min: Math.max(500, dia + 1), max: 3000 }), fc.constant(dia)))
  .map(([sys, dia]) => ({ systolic: sys / 10, diastolic: dia / 10 }));

const secondsArb = fc.integer({
  min: DateTime.utc(1990, 1, 1).toSeconds(),
  max: DateTime.utc(2030, 12, 31, 23, 59, 59).toSeconds(),
});

const observationArb: fc.Arbitrary<TeleObservation> = fc
  .tuple(cprArb, pressuresArb, secondsArb)
  .map(([patientId, p, s]) => ({
    patientId,
    systolic: { value: p.systolic, unit: 'mmHg' as const },
    diastolic: { value: p.diastolic, unit: 'mmHg' as const },
    measuredAt: toIsoSeconds(DateTime.fromSeconds(s, { zone: 'utc' })),
  }));

const hl7Of = (obs: TeleObservation): string => {
  const builder = new HL7Builder();
  Director.construct(obs, builder);
  return builder.getResult();
};

const COPENHAGEN = 'Europe/Copenhagen';

const effectiveTimeOf = (xml: string): string => /<effectiveTime value="([^"]*)"\/>/.exec(xml)![1]!;

/**
 * How a receiving system that follows HL7 v3 reads a TS (`yyyyMMddHHmmss[+|-ZZzz]`): with an offset, at that
 * offset; without one, as the sender's local time, which for a Danish consumer is its own zone.
 */
const readAsHl7Consumer = (ts: string, localZone: string): DateTime => {
  const withOffset = /^\d{14}[+-]\d{4}$/.test(ts);
  const read = withOffset ? DateTime.fromFormat(ts, 'yyyyMMddHHmmssZZZ', { setZone: true }) : DateTime.fromFormat(ts, 'yyyyMMddHHmmss', { zone: localZone });
  if (!read.isValid) throw new Error(`not an HL7 TS: ${ts}`);
  return read;
};

describe('HL7 round trip', () => {
  it('generates only valid CPR numbers (the generator itself is checked)', () => {
    fc.assert(fc.property(cprArb, (cpr) => isCpr(cpr)), { numRuns: 500 });
  });

  it('build then parse gives back the same observation', () => {
    fc.assert(
      fc.property(observationArb, (obs) => {
        expect(parseHl7Observation(hl7Of(obs))).toEqual(obs);
      }),
      { numRuns: 500 },
    );
  });

  it('includes one-decimal values and the range ends', () => {
    const obs: TeleObservation = {
      patientId: '010100-4000' as Cpr,
      systolic: { value: 300, unit: 'mmHg' },
      diastolic: { value: 20.1, unit: 'mmHg' },
      measuredAt: '2030-12-31T23:59:59Z',
    };
    expect(hl7Of(obs)).toContain('value="20.1"');
    expect(parseHl7Observation(hl7Of(obs))).toEqual(obs);
  });

  it('writes every effectiveTime with the offset +0000, and parses it back to the same instant', () => {
    fc.assert(
      fc.property(observationArb, (obs) => {
        const xml = hl7Of(obs);
        expect(effectiveTimeOf(xml)).toMatch(/^\d{14}\+0000$/);
        expect(parseHl7Observation(xml).measuredAt).toBe(obs.measuredAt);
      }),
      { numRuns: 300 },
    );
  });

  it('a consumer in Denmark that reads effectiveTime as HL7 says (no offset: its local time) gets the instant measured', () => {
    fc.assert(
      fc.property(observationArb, (obs) => {
        const read = readAsHl7Consumer(effectiveTimeOf(hl7Of(obs)), COPENHAGEN);
        expect(read.toMillis()).toBe(DateTime.fromISO(obs.measuredAt).toMillis());
      }),
      { numRuns: 300 },
    );
  });

  // Local midnight in Copenhagen is 23:00 or 22:00 UTC of the day before: the reading the safety review found on the
  // wrong day. Winter and summer time, both days the clocks change, a leap day, New Year's.
  it.each(['2026-12-01', '2026-07-01', '2026-03-29', '2026-10-25', '2028-02-29', '2027-01-01'])(
    'a reading at local midnight in Europe/Copenhagen on %s round-trips to the same instant and the same local day',
    (day) => {
      const midnight = DateTime.fromISO(`${day}T00:00:00`, { zone: COPENHAGEN });
      expect(midnight.isValid).toBe(true);
      const obs: TeleObservation = {
        patientId: '251248-1234' as Cpr,
        systolic: { value: 126, unit: 'mmHg' },
        diastolic: { value: 70, unit: 'mmHg' },
        measuredAt: toIsoSeconds(midnight),
      };
      const xml = hl7Of(obs);
      expect(parseHl7Observation(xml).measuredAt).toBe(toIsoSeconds(midnight));
      const read = readAsHl7Consumer(effectiveTimeOf(xml), COPENHAGEN);
      expect(read.toMillis()).toBe(midnight.toMillis());
      expect(read.setZone(COPENHAGEN).toISODate()).toBe(day);
    },
  );

  it('the document and the metadata built from one observation agree on patient and time', () => {
    fc.assert(
      fc.property(observationArb, (obs) => {
        const metadata = new MetadataBuilder();
        Director.construct(obs, metadata);
        const parsed = parseHl7Observation(hl7Of(obs));
        expect(metadata.getResult().patientId).toBe(parsed.patientId);
        expect(metadata.getResult().serviceStartTime).toBe(parsed.measuredAt);
      }),
      { numRuns: 100 },
    );
  });
});
