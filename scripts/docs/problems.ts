/**
 * docs/problems.md: every problem type the HTTP API answers with (RFC 9457), from PROBLEM_TYPES, so a caller can see
 * them all in one place (a new contributor found 28 of 91 codes in no document). test/unit/problems-doc.unit.spec.ts
 * fails when the file and the code differ.
 *
 *   node -r ./test/support/ts-register.js scripts/docs/problems.ts          # rewrite docs/problems.md
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { PROBLEM_TYPES } from '../../src/adapters/errors/error-codes';

export const PROBLEMS_DOC = resolve(__dirname, '..', '..', 'docs', 'problems.md');

export const problemsMarkdown = (): string => {
  const rows = Object.entries(PROBLEM_TYPES as Record<string, readonly [number, string]>)
    .sort(([a, [sa]], [b, [sb]]) => sa - sb || (a < b ? -1 : 1))
    .map(([code, [status, title]]) => `| \`${code}\` | ${status} | ${title.replace(/\|/g, '\\|')} |`);
  return [
    '# Problem types',
    '',
    'Every error of the HTTP API is `application/problem+json` (RFC 9457) with a stable `code` and a `type` of',
    '`/problems/{code}` (`GET /problems/{code}` answers its status and title). The `detail` says what was wrong with',
    'this request, and `errors[]` names the fields (see the README, "Errors"). Generated from',
    '`src/adapters/errors/error-codes.ts` by `scripts/docs/problems.ts`; a unit test keeps the two in step.',
    '',
    '| code | status | title |',
    '|---|---:|---|',
    ...rows,
    '',
  ].join('\n');
};

if (require.main === module) writeFileSync(PROBLEMS_DOC, problemsMarkdown());
