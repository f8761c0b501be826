import { IDEMPOTENCY_KEY_FORM, WHOLE_CPR_KEY_PATTERN, idempotencyKeyProblem } from '../../src/domain/shared/idempotency-key';

/**
 * WHOLE_CPR_KEY_PATTERN is what the OpenAPI document says a key must not match: it must refuse exactly the keys of
 * the right form that idempotencyKeyProblem refuses as a CPR number, no more (a client would hold back a key the hub
 * takes) and no less (it would send one the hub refuses). Checked on keys made to sit on the rule's edges: real and
 * unreal dates (30 February, 29 February in leap and other years, month 13, day 00), ten and twelve digits, separator
 * runs of 1-4 anywhere and around, and other digit counts; a seeded generator, so a failure is repeatable.
 */
const pattern = new RegExp(WHOLE_CPR_KEY_PATTERN, 'u');
const CPR_REFUSAL = 'must not be a CPR number (it is stored in clear)';

const random = (() => {
  let state = 0x2545f491;
  return (n: number): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % n;
  };
})();
const pick = <T>(items: readonly T[]): T => items[random(items.length)]!;
const two = (n: number): string => String(n).padStart(2, '0');
const SEPARATORS = ['-', '.', '_', ':'];

/** Digits that are often a real ddmmyy (or ddmmyyyy) and often just not. */
const digitsOf = (): string => {
  const day = pick([1, 9, 10, 19, 20, 28, 29, 30, 31, 0, 32, 39, random(100)]);
  const month = pick([1, 2, 2, 4, 9, 11, 12, 0, 13, 19, random(100)]);
  const yy = pick([0, 4, 48, 47, 96, 99, 1, 2, 12, random(100)]);
  const century = pick(['19', '20', '18', '00', two(random(100))]);
  const serial = String(random(10_000)).padStart(4, '0');
  switch (random(5)) {
    case 0:
      return `${two(day)}${two(month)}${century}${two(yy)}${serial}`;
    case 1:
      return `${century}${two(yy)}${two(month)}${two(day)}${serial}`;
    case 2:
      return String(random(1e9)).padStart(9 + random(5), String(random(10)));
    default:
      return `${two(day)}${two(month)}${two(yy)}${serial}`;
  }
};
const separated = (digits: string): string => {
  const run = (): string => Array.from({ length: 1 + random(random(4) === 0 ? 4 : 3) }, () => pick(SEPARATORS)).join('');
  const gaps = random(4);
  const at = new Set(Array.from({ length: gaps }, () => pick([2, 4, 6, 8, 1 + random(digits.length - 1)])));
  const inner = [...digits].map((d, i) => (at.has(i) ? run() + d : d)).join('');
  return `${random(6) === 0 ? run() : ''}${inner}${random(6) === 0 ? run() : ''}`;
};

describe('WHOLE_CPR_KEY_PATTERN', () => {
  it('refuses exactly the keys idempotencyKeyProblem refuses as a CPR number', () => {
    const disagreements: string[] = [];
    let refused = 0;
    for (let i = 0; i < 100_000; i++) {
      const key = separated(digitsOf());
      if (!IDEMPOTENCY_KEY_FORM.test(key)) continue;
      const hub = idempotencyKeyProblem(key) === CPR_REFUSAL;
      if (hub) refused++;
      if (pattern.test(key) !== hub) disagreements.push(`${key}: hub ${hub ? 'refuses' : 'takes'}`);
    }
    expect(disagreements.slice(0, 20)).toEqual([]);
    // The corpus reaches both sides of the rule.
    expect(refused).toBeGreaterThan(5_000);
  });

  it.each([
    ['2512481234', true],
    ['251248-1234', true],
    ['25.12.48-1234', true],
    ['25124-81234', true],
    ['-251248:1234.', true],
    ['29.02.48-1234', true],
    ['25-12-1948-1234', true],
    ['2512:19:48:1234', true],
    ['9999999999', true],
    ['31.02.48-1234', false],
    ['29.02.47-1234', false],
    ['251248----1234', false],
    ['25-12-48-12-34', false],
    ['2026-11-30-0001', false],
    ['1948-12-25-1234', false],
    ['12512481234', false],
    ['meter-7:0042', false],
  ])('%s: refused %s, as the hub does', (key, refusedByHub) => {
    expect({ pattern: pattern.test(key), hub: idempotencyKeyProblem(key) === CPR_REFUSAL }).toEqual({ pattern: refusedByHub, hub: refusedByHub });
  });
});
