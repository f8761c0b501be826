import { readFileSync } from 'node:fs';
import { PROBLEMS_DOC, problemsMarkdown } from '../../scripts/docs/problems';
import { PROBLEM_TYPES } from '../../src/adapters/errors/error-codes';

describe('docs/problems.md', () => {
  it('lists every problem type the API has (regenerate: node -r ./test/support/ts-register.js scripts/docs/problems.ts)', () => {
    const doc = readFileSync(PROBLEMS_DOC, 'utf8');
    expect(doc).toBe(problemsMarkdown());
    for (const code of Object.keys(PROBLEM_TYPES)) expect(doc).toContain(`| \`${code}\` |`);
  });
});
