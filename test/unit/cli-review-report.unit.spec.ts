import { renderReview } from '../../src/adapters/cli/review-report';
import type { ObservationList } from '../../src/adapters/cli/hub-client';

/**
 * `rts review`'s text at narrow widths. Across the end of summer time every row carries its own offset, and values
 * with decimals are stored (and shown) as sent: the narrowest one-line table form was then ~42 columns, wider
 * than the 40 a screen reader's terminal has.
 */
const reading = (measuredAt: string, systolic: number, diastolic: number): ObservationList['observations'][number] =>
  ({ uniqueId: `2.25.${Date.parse(measuredAt)}`, measuredAt, systolic: { value: systolic, unit: 'mm[Hg]' }, diastolic: { value: diastolic, unit: 'mm[Hg]' } }) as unknown as ObservationList['observations'][number];

const acrossDst: ObservationList = {
  from: '2026-10-24T12:00:00Z',
  to: '2026-10-25T12:00:00Z',
  count: 3,
  observations: [reading('2026-10-25T00:30:00Z', 126.25, 70.25), reading('2026-10-25T01:30:00Z', 131.75, 85.125), reading('2026-10-25T09:00:00Z', 128, 80)],
};

describe('rts review at narrow widths', () => {
  it('fits every line in 40 columns across a change of summer time with decimals: each reading on two lines', () => {
    const text = renderReview(acrossDst, { width: 40, chart: false, zone: 'Europe/Copenhagen' });
    const lines = text.trimEnd().split('\n');
    expect(lines.filter((l) => l.length > 40)).toEqual([]);
    // 02:30 twice, told apart by the offset; the values as stored, under their time.
    expect(lines).toEqual(expect.arrayContaining(['Measured', '  Systolic/diastolic', '2026-10-25 02:30+02:00', '  126.25/70.25 mmHg', '2026-10-25 02:30+01:00', '  131.75/85.125 mmHg', '2026-10-25 10:00+01:00', '  128/80 mmHg']));
    const at = lines.indexOf('2026-10-25 02:30+02:00');
    expect(lines.slice(at, at + 4)).toEqual(['2026-10-25 02:30+02:00', '  126.25/70.25 mmHg', '2026-10-25 02:30+01:00', '  131.75/85.125 mmHg']);
  });

  it('keeps a one-line form wherever one fits', () => {
    const wide = renderReview(acrossDst, { width: 80, chart: false, zone: 'Europe/Copenhagen' }).split('\n');
    expect(wide).toContain('Sun 2026-10-25 02:30 UTC+02:00  126.25 mmHg   70.25 mmHg');
    expect(wide).not.toContain('  Systolic/diastolic');
    const summer: ObservationList = { ...acrossDst, from: '2026-10-24T00:00:00Z', to: '2026-10-24T12:00:00Z', observations: [reading('2026-10-24T08:00:00Z', 126.25, 70.25)] };
    expect(renderReview(summer, { width: 40, chart: false, zone: 'Europe/Copenhagen' }).split('\n')).toContain('Sat 2026-10-24 10:00  126.25/70.25 mmHg');
  });
});
