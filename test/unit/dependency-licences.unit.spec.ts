// Every package production installs (dependencies, not devDependencies, with everything they pull in) is under a
// licence of the allow-list below: a future dependency under GPL, AGPL, LGPL, SSPL, no licence or UNLICENSED fails
// here, by name, before it reaches a hospital. Offline: reads package-lock.json and the installed package.json files.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { licenceAllowed, nameOf, productionTree, type PackageLock } from '../support/package-lock';

const ROOT = resolve(__dirname, '..', '..');

/**
 * Permissive licences only: no copyleft, no source-offer duty for the hub's own code. Widen it in a commit that says
 * who agreed (a hospital's counsel reads this list); a package whose expression is acceptable though not made of
 * these goes into EXCEPTIONS with its exact version and expression, not here.
 */
const ALLOWED = new Set(['MIT', 'ISC', 'BSD-2-Clause', 'BSD-3-Clause', 'Apache-2.0', '0BSD']);
/** `name@version` -> the exact licence expression accepted for it, and why. None so far. */
const EXCEPTIONS: Record<string, { licence: string; why: string }> = {};

const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as PackageLock;
const production = productionTree(lock);

describe('licence expressions', () => {
  it.each([
    ['MIT', true],
    ['Apache-2.0', true],
    ['(MIT OR WTFPL)', true],
    ['(BSD-3-Clause AND Apache-2.0)', true],
    ['(BSD-2-Clause OR MIT OR Apache-2.0)', true],
    ['LGPL-3.0-or-later OR MIT', true],
    ['GPL-3.0-only', false],
    ['AGPL-3.0-or-later', false],
    ['LGPL-2.1-only', false],
    ['SSPL-1.0', false],
    ['UNLICENSED', false],
    ['SEE LICENSE IN LICENSE.md', false],
    ['MIT AND GPL-2.0-only', false],
    ['(GPL-2.0-only AND MIT)', false],
    ['GPL-2.0-only WITH Classpath-exception-2.0', false],
    ['MIT OR', false],
    ['(MIT', false],
    ['', false],
  ])('%j allowed: %s', (expression, expected) => {
    expect(licenceAllowed(expression, ALLOWED)).toBe(expected);
  });
});

describe('the production tree', () => {
  it('is walked from the root dependencies, resolved from the nearest node_modules outwards, without dev-only packages', () => {
    const tree = productionTree({
      lockfileVersion: 3,
      packages: {
        '': { dependencies: { a: '1' }, optionalDependencies: { absent: '1' } },
        'node_modules/a': { version: '1', dependencies: { b: '2', c: '1' } },
        'node_modules/a/node_modules/b': { version: '2' },
        'node_modules/b': { version: '1', dev: true },
        'node_modules/c': { version: '1', peerDependencies: { d: '1', e: '1' }, peerDependenciesMeta: { e: { optional: true } } },
        'node_modules/d': { version: '1' },
        'node_modules/tool': { version: '1', dev: true },
      },
    });
    expect(tree).toEqual({ paths: ['node_modules/a', 'node_modules/a/node_modules/b', 'node_modules/c', 'node_modules/d'], missing: [] });
  });

  it('is whole: every dependency of a production package is in the lock', () => {
    expect(production.missing).toEqual([]);
    expect(production.paths.length).toBeGreaterThan(100);
  });

  it("is the lock's own non-dev set, so npm ci --omit=dev installs what this test checks", () => {
    const nonDev = Object.entries(lock.packages).filter(([path, entry]) => path !== '' && entry.dev !== true).map(([path]) => path);
    expect(production.paths).toEqual(nonDev.sort());
  });
});

describe('licences of the production dependencies', () => {
  it('are in the allow-list (or an exception for that exact version and expression)', () => {
    const refused = production.paths.flatMap((path) => {
      const entry = lock.packages[path]!;
      const id = `${nameOf(path)}@${entry.version ?? '?'}`;
      const licence = typeof entry.license === 'string' ? entry.license : undefined;
      if (licence === undefined) return [`${id}: no licence`];
      if (licenceAllowed(licence, ALLOWED) || EXCEPTIONS[id]?.licence === licence) return [];
      return [`${id}: ${licence}`];
    });
    expect(refused).toEqual([]);
  });

  it('are what the installed packages say of themselves, in the versions the lock names', () => {
    const differ = production.paths.flatMap((path) => {
      const entry = lock.packages[path]!;
      let installed: { version?: string; license?: unknown };
      try {
        installed = JSON.parse(readFileSync(join(ROOT, path, 'package.json'), 'utf8')) as typeof installed;
      } catch {
        return entry.optional === true ? [] : [`${nameOf(path)}: not installed`];
      }
      const out: string[] = [];
      if (installed.version !== entry.version) out.push(`${nameOf(path)}: installed ${installed.version}, lock ${entry.version}`);
      if (JSON.stringify(installed.license) !== JSON.stringify(entry.license)) {
        out.push(`${nameOf(path)}: package.json says ${JSON.stringify(installed.license)}, lock ${JSON.stringify(entry.license)}`);
      }
      return out;
    });
    expect(differ).toEqual([]);
  });
});
