// What `npm ci` installs is what package-lock.json pins, byte for byte: every package has a SHA-512 `integrity`
// (npm ci refuses a tarball that does not match it), comes from the registry by name and version (no git, http,
// file or link dependency, whose content no hash in the lock covers), and package.json asks for exact versions only.
// The lock records no `resolved` URL (it was written with omit-lockfile-registry-resolved): npm ci fetches
// name@version from the registry npm is configured with, a hospital's own mirror included, and the hash decides.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { nameOf, type PackageLock } from '../support/package-lock';

const ROOT = resolve(__dirname, '..', '..');
const REGISTRY = 'https://registry.npmjs.org/';

interface PackageJson {
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  bundleDependencies?: unknown;
  bundledDependencies?: unknown;
}

const EXACT = /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/;

const lockProblems = (lock: PackageLock, pkg: PackageJson): string[] => {
  const problems: string[] = [];
  if (lock.lockfileVersion !== 3) problems.push(`lockfileVersion ${lock.lockfileVersion}, not 3`);
  for (const [field, specs] of Object.entries({ dependencies: pkg.dependencies, devDependencies: pkg.devDependencies, optionalDependencies: pkg.optionalDependencies })) {
    for (const [name, spec] of Object.entries(specs ?? {})) {
      if (!EXACT.test(spec)) problems.push(`package.json ${field}.${name}: ${spec} is not an exact version`);
      const inLock = (lock.packages[''] as Record<string, Record<string, string> | undefined>)[field]?.[name];
      if (inLock !== spec) problems.push(`package.json ${field}.${name}: ${spec}, the lock's root says ${inLock ?? 'nothing'}`);
    }
  }
  if (pkg.bundleDependencies !== undefined || pkg.bundledDependencies !== undefined) problems.push('package.json bundles dependencies');
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === '') continue;
    if (!path.startsWith('node_modules/')) problems.push(`${path}: not under node_modules (a workspace or file: package)`);
    if (entry.link === true) problems.push(`${path}: a link, not a registry package`);
    if (!/^sha512-[A-Za-z0-9+/]{86}==$/.test(entry.integrity ?? '')) problems.push(`${path}: no sha512 integrity (${entry.integrity ?? 'none'})`);
    if (entry.resolved !== undefined && !entry.resolved.startsWith(REGISTRY)) problems.push(`${path}: resolved from ${entry.resolved}`);
    if (!EXACT.test(entry.version ?? '')) problems.push(`${path}: version ${entry.version ?? 'none'} is not a registry version`);
  }
  return problems;
};

it('package-lock.json pins every package by SHA-512 to a registry version, and package.json asks for exact versions', () => {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as PackageLock;
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson;
  expect(Object.keys(lock.packages).length).toBeGreaterThan(100);
  expect(lockProblems(lock, pkg)).toEqual([]);
});

it('names each way a package could escape the hash: no integrity, sha1 only, git, tarball URL, link, ranges', () => {
  const sha512 = `sha512-${'A'.repeat(86)}==`;
  const problems = lockProblems(
    {
      lockfileVersion: 3,
      packages: {
        '': { dependencies: { a: '1.0.0', b: '^2.0.0' }, devDependencies: { g: 'github:someone/g' } } as never,
        'node_modules/a': { version: '1.0.0', integrity: sha512, resolved: `${REGISTRY}a/-/a-1.0.0.tgz` },
        'node_modules/b': { version: '2.1.0' },
        'node_modules/c': { version: '1.0.0', integrity: 'sha1-AAAAAAAAAAAAAAAAAAAAAAAAAAA=' },
        'node_modules/g': { version: 'git+ssh://git@github.com/someone/g.git#0123abc', integrity: sha512 },
        'node_modules/h': { version: '1.0.0', integrity: sha512, resolved: 'https://example.org/h-1.0.0.tgz' },
        'node_modules/l': { link: true, resolved: 'packages/l' } as never,
        'packages/l': { version: '1.0.0', integrity: sha512 },
      },
    },
    { dependencies: { a: '1.0.0', b: '^2.0.0' }, devDependencies: { g: 'github:someone/g' } },
  );
  expect(problems).toEqual([
    'package.json dependencies.b: ^2.0.0 is not an exact version',
    'package.json devDependencies.g: github:someone/g is not an exact version',
    'node_modules/b: no sha512 integrity (none)',
    'node_modules/c: no sha512 integrity (sha1-AAAAAAAAAAAAAAAAAAAAAAAAAAA=)',
    'node_modules/g: version git+ssh://git@github.com/someone/g.git#0123abc is not a registry version',
    'node_modules/h: resolved from https://example.org/h-1.0.0.tgz',
    'node_modules/l: a link, not a registry package',
    'node_modules/l: no sha512 integrity (none)',
    'node_modules/l: resolved from packages/l',
    'node_modules/l: version none is not a registry version',
    'packages/l: not under node_modules (a workspace or file: package)',
  ]);
});

it('every package with an install script is decided in allowScripts, and only better-sqlite3 (compiled from its sources) may run one', () => {
  // npm 11 runs the install script of a package that allowScripts does not name, with a notice (unless
  // strict-allow-scripts, which .ci/run sets): a new dependency's script must be a decision here, not a default.
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as PackageLock & { packages: Record<string, { hasInstallScript?: boolean }> };
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { allowScripts?: Record<string, boolean> };
  const withScripts = [...new Set(Object.entries(lock.packages).filter(([, e]) => e.hasInstallScript === true).map(([path]) => nameOf(path)))].sort();
  expect(withScripts.length).toBeGreaterThan(0);
  expect(withScripts.filter((name) => typeof pkg.allowScripts?.[name] !== 'boolean')).toEqual([]);
  expect(Object.entries(pkg.allowScripts ?? {}).filter(([, allowed]) => allowed).map(([name]) => name)).toEqual(['better-sqlite3']);
  // better-sqlite3's script is `prebuild-install || node-gyp rebuild`: prebuild-install would fetch a prebuilt binary
  // from GitHub, which no hash in the lock covers. CI makes it compile the sources the lock pins instead.
  const ci = readFileSync(join(ROOT, '.ci', 'run'), 'utf8');
  expect(ci).toMatch(/^export npm_config_build_from_source="\$\{npm_config_build_from_source:-true\}"$/m);
  expect(ci).toMatch(/^export npm_config_strict_allow_scripts="\$\{npm_config_strict_allow_scripts:-true\}"$/m);
});

it("opts out of @scarf/scarf's install report to scarf.sh whatever the npm (one that ignores allowScripts would run it)", () => {
  // A devDependency's dependency (@asyncapi/parser -> @stoplight/*): its postinstall reports the install, with the
  // dependent packages' names hashed, unless the root package.json's scarfSettings turn it off.
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as PackageLock;
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scarfSettings?: { enabled?: boolean } };
  expect(lock.packages['node_modules/@scarf/scarf']?.dev).toBe(true);
  expect(pkg.scarfSettings).toEqual({ enabled: false });
});
