import { OFFSET_DATE_TIME_PATTERN, offsetDateTimeMillis } from '../../src/domain/shared/iso-instant';

/**
 * OFFSET_DATE_TIME_PATTERN, the API documents' pattern for a date-time the hub takes, against the hub's own reading
 * (offsetDateTimeMillis): every text it matches the hub takes but for a day its month does not have (left to
 * `format: date-time`), and every text the hub takes it matches. Texts on the clock's edges: 23/24 hours, 59/60
 * minutes and seconds (a leap second), offsets up to 24:00, days 28-32, months 00-13, fractions, no seconds.
 */
const pattern = new RegExp(OFFSET_DATE_TIME_PATTERN, 'u');
const two = (n: number): string => String(n).padStart(2, '0');

const corpus = (): string[] => {
  const out: string[] = [];
  for (const date of ['2016-12-31', '2024-02-29', '2026-02-29', '2026-02-30', '2026-04-31', '2026-13-01', '2026-00-10', '2026-01-00', '2026-01-32', '0999-01-01', '9999-12-31'])
    for (const hour of [0, 9, 23, 24, 29])
      for (const minute of [0, 59, 60])
        for (const seconds of ['', ':00', ':59', ':60', ':60.5', ':59.999999999', ':61'])
          for (const offset of ['Z', '+00:00', '-23:59', '+24:00', '+14:00', '+05:60', '-12:45'])
            out.push(`${date}T${two(hour)}:${two(minute)}${seconds}${offset}`);
  return out;
};
/** The hub refuses it only for its day, one that some month has (29-31): the same text with day 01 is taken. */
const refusedForItsDayOnly = (text: string): boolean => Number(text.slice(8, 10)) >= 1 && Number(text.slice(8, 10)) <= 31 && Number.isNaN(offsetDateTimeMillis(text)) && !Number.isNaN(offsetDateTimeMillis(`${text.slice(0, 8)}01${text.slice(10)}`));

describe('OFFSET_DATE_TIME_PATTERN', () => {
  it('matches what the hub takes, and what it refuses only for a day its month lacks', () => {
    const disagreements = corpus()
      .filter((text) => pattern.test(text) !== (!Number.isNaN(offsetDateTimeMillis(text)) || refusedForItsDayOnly(text)))
      .map((text) => `${text}: hub ${Number.isNaN(offsetDateTimeMillis(text)) ? 'refuses' : 'takes'}, pattern ${pattern.test(text) ? 'matches' : 'does not'}`);
    expect(disagreements.slice(0, 20)).toEqual([]);
  });

  it.each([['2016-12-31T23:59:60Z'], ['2016-12-31T23:59:60.5+00:00'], ['2017-01-01T00:59:60+01:00']])('refuses the leap second %s, as the hub does', (text) => {
    expect({ pattern: pattern.test(text), hub: Number.isNaN(offsetDateTimeMillis(text)) ? 'refuses' : 'takes' }).toEqual({ pattern: false, hub: 'refuses' });
  });
});
