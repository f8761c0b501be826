import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PROBLEM_TYPES, problem } from '../../src/adapters/http/problem';

/**
 * Every code the domain and application throw as an RtsError (ValidationError, NotFoundError, ConflictError,
 * ForbiddenError, UnavailableError) can reach an HTTP caller as a problem whose `type` is /problems/{code}: so each
 * must be a known problem type, with its own title and status and a page at GET /problems/{code}. A code missing
 * here answered with the generic title 'Request failed' and a type URI that led to a 404.
 */
const SRC = join(__dirname, '..', '..', 'src');
const filesUnder = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));

const THROWN = /new (ValidationError|NotFoundError|ConflictError|ForbiddenError|UnavailableError)\(\s*'([a-z_]+)'/g;

describe('problem types', () => {
  const thrown = new Map<string, string>();
  for (const file of filesUnder(SRC)) for (const m of readFileSync(file, 'utf8').matchAll(THROWN)) thrown.set(m[2]!, `${m[1]} in ${file.slice(SRC.length + 1)}`);

  it('finds the codes thrown in src', () => {
    expect(thrown.size).toBeGreaterThan(50);
    expect(thrown.get('key_not_found')).toMatch(/^NotFoundError in domain\/security\/system-keys\.ts$/);
  });

  it('knows every code the application throws as an RtsError', () => {
    const unknown = [...thrown].filter(([code]) => !(code in PROBLEM_TYPES)).map(([code, where]) => `${code} (${where})`);
    expect(unknown).toEqual([]);
  });

  it('gives every code a title of its own, so a caller reading titles can tell them apart', () => {
    const byTitle = new Map<string, string[]>();
    for (const [code, [, title]] of Object.entries(PROBLEM_TYPES as Record<string, readonly [number, string]>)) byTitle.set(title, [...(byTitle.get(title) ?? []), code]);
    expect([...byTitle].filter(([, codes]) => codes.length > 1)).toEqual([]);
  });

  it('gives a known code its own title and status', () => {
    expect(problem('last_key', 'x')).toMatchObject({ type: '/problems/last_key', status: 409, title: expect.not.stringMatching(/^Request failed$/) });
  });
});
