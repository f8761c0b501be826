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
