// The package's own types must compile for a consumer that installed only its dependencies: every package the
// public declarations (dist/index.d.ts and what it reaches) import that ships no types of its own needs its @types
// package among the dependencies, not the devDependencies. With @types/luxon a devDependency, a strict consumer got
// TS7016 for 'luxon' (or, with skipLibCheck, DateTime as any).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

jest.setTimeout(120_000);

const ROOT = join(__dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };

const packageOf = (specifier: string): string => (specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!);

const shipsTypes = (name: string): boolean => {
  const dir = join(ROOT, 'node_modules', name);
  const own = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { types?: string; typings?: string; main?: string; exports?: unknown };
  return (
    Boolean(own.types ?? own.typings) ||
    existsSync(join(dir, 'index.d.ts')) ||
    (own.main !== undefined && existsSync(join(dir, own.main.replace(/\.c?js$/, '.d.ts')))) ||
    JSON.stringify(own.exports ?? {}).includes('.d.ts')
  );
};

it('every package the public declarations import has types a consumer gets with the dependencies alone', () => {
  const out = mkdtempSync(join(tmpdir(), 'rts-dts-'));
  try {
    execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--declaration', '--emitDeclarationOnly', '--outDir', out], { stdio: 'pipe' });
    // The declarations index.d.ts reaches, and the packages they import.
    const seen = new Set<string>();
    const packages = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file) || !existsSync(file)) return;
      seen.add(file);
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:\bfrom |\bimport\()["']([^"']+)["']/g)) {
        const spec = m[1]!;
        if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '')) + '.d.ts');
        else if (!spec.startsWith('node:')) packages.add(packageOf(spec));
      }
    };
    visit(join(out, 'index.d.ts'));
    expect(seen.size).toBeGreaterThan(10);
    expect(packages.has('luxon')).toBe(true); // what this test is about: DateTime is in the public types
    const untyped = [...packages].filter((name) => name in pkg.dependencies && !shipsTypes(name));
    const missing = untyped.filter((name) => !(`@types/${name.replace(/^@/, '').replace('/', '__')}` in pkg.dependencies));
    expect(missing).toEqual([]);
    // And nothing public comes from a package that is not a dependency at all.
    expect([...packages].filter((name) => !(name in pkg.dependencies))).toEqual([]);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
