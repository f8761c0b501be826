import { z } from 'zod';
import { issueMessage } from '../../src/adapters/validation/zod-issues';

/** The wording of a number's problems (found by the HTTP exploratory test: "must be an int (not a number)"). */
describe('issueMessage for numbers', () => {
  const limit = z.object({ limit: z.number().int().min(1) });
  const messages = (value: unknown) => {
    const result = limit.safeParse({ limit: value });
    return result.success ? [] : result.error.issues.map(issueMessage);
  };

  it('says what is wrong with a fraction, an infinity (1e400 in JSON) and a string, each in plain words', () => {
    expect(messages(1.5)).toEqual(['must be a whole number']);
    expect(messages(JSON.parse('1e400'))).toEqual(['must be a finite number']);
    expect(messages(JSON.parse('-1e400'))).toEqual(['must be a finite number']);
    expect(messages(Number.NaN)).toEqual(['must be a number']);
    expect(messages('7')).toEqual(['must be a number (not a string)']);
    expect(messages(undefined)).toEqual(['is required (a number)']);
    expect(messages(0)).toEqual(['must be at least 1']);
  });
});
