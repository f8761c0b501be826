// The two strengths of "may be a CPR number" (src/domain/monitoring/cpr-like.ts) as properties (fast-check), on random
// texts built from CPR numbers in every form it names, digit runs, separators, letters, dates, times and UUIDs:
// - what a refusal takes (holdsCprNumber) a redaction takes too (mayHoldCprDigits): no text is refused as holding a
//   CPR number and then shown elsewhere unredacted;
// - what redactCprDigits leaves holds no CPR number by either rule (also with wholeAnyDate), so a redacted text
//   redacted again is unchanged.
// 200,000 runs passed when this was written; RTS_MODEL_RUNS=N runs more.
import fc from 'fast-check';
import { holdsCprNumber, mayHoldCprDigits, redactCprDigits } from '../../src/domain/monitoring/cpr-like';

const pieceArb = fc.oneof(
  fc.constantFrom('251248-1234', '2512481234', '25.12.48-1234', '25 12 48 1234', '251248\u20131234', '19481225-1234', '1948-12-25-1234', '25-12-1948-1234', '25124-81234', '290200-1234', '320148-1234'),
  fc.stringMatching(/^[0-9]{1,6}$/),
  fc.constantFrom('-', '.', '_', ':', '/', '+', ' ', '\u00a0', '--', 'x', 'user', 'bed ', '1', '0', '12', '2026-12-02', '1030', '12:00:00', 'p', 'a', '\u2212', '\uFF0D'),
  fc.uuid(),
);
const textArb = fc.array(pieceArb, { maxLength: 6 }).map((pieces) => pieces.join(''));

describe('cpr-like: refusals and redactions agree, and a redaction leaves no CPR number', () => {
  const runs = Number(process.env['RTS_MODEL_RUNS'] ?? 3000);
  it(`holdsCprNumber implies mayHoldCprDigits, and redactCprDigits leaves nothing either finds (${runs} runs)`, () => {
    fc.assert(
      fc.property(textArb, (text) => {
        if (holdsCprNumber(text)) expect({ text, redactionTakesIt: mayHoldCprDigits(text) }).toEqual({ text, redactionTakesIt: true });
        for (const options of [{}, { wholeAnyDate: true }]) {
          const redacted = redactCprDigits(text, '[redacted]', options);
          expect({ text, redacted, left: mayHoldCprDigits(redacted) || holdsCprNumber(redacted) }).toEqual({ text, redacted, left: false });
          expect(redactCprDigits(redacted, '[redacted]', options)).toBe(redacted);
        }
      }),
      { numRuns: runs },
    );
  });
});
