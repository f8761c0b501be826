// The package's declarations must compile for the consumers README's "Embedding the core" names: strict
// TypeScript with skipLibCheck off, in a CommonJS project under `module: node16` (and nodenext), in an ES module
// project, and under `moduleResolution: bundler`. jose ships as ESM only; a declaration file of the package that
// said `import type { JWK } from 'jose'` was refused in a CommonJS project under node16/nodenext (TS1541: a type-only
// import of an ES module from a CommonJS module needs a resolution-mode attribute), so such a consumer did not
// compile at all. (nodenext resolves as node16 here; left out, as each compile takes ~10 s of a core.)
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

jest.setTimeout(180_000);

const ROOT = join(__dirname, '..', '..');
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

// Under ROOT, so that the package's dependencies resolve from ROOT/node_modules as they would beside it.
let base = '';
beforeAll(() => {
  mkdirSync(join(ROOT, '.cache'), { recursive: true });
  base = mkdtempSync(join(ROOT, '.cache', 'consumer-types-'));
  const pkgDir = join(base, 'node_modules', 'telemed-rts');
  execFileSync(process.execPath, [TSC, '-p', join(ROOT, 'tsconfig.build.json'), '--declaration', '--emitDeclarationOnly', '--outDir', join(pkgDir, 'dist'), '--tsBuildInfoFile', join(base, 'build.tsbuildinfo')], { stdio: 'pipe' });
  const own = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(pkgDir, 'package.json'), JSON.stringify({ name: own['name'], version: own['version'], main: own['main'], types: own['types'] }));
});
afterAll(() => {
  if (base) rmSync(base, { recursive: true, force: true });
});

const consumer = `
import { openTeleMed, createTeleObservation, parseCpr, lastDays, ConflictError, ConfigError, RtsError } from 'telemed-rts';
import { RtsClient, generatePartyKeys, joseCodecFor } from 'telemed-rts/dist/sdk/index.js';
import { DateTime } from 'luxon';
export async function run(): Promise<number> {
  const rts = await openTeleMed({ inMemory: true });
  try {
    const now = DateTime.utc();
    await rts.telemed.processAndStore(createTeleObservation({ patientId: '010203-4321', systolic: 126, diastolic: 70, measuredAt: now }, now));
    return (await rts.telemed.getObservationsFor(parseCpr('010203-4321'), lastDays(7, now))).length;
  } catch (e) {
    if (e instanceof ConflictError || e instanceof ConfigError || e instanceof RtsError) return -1;
    throw e;
  } finally {
    await rts.close();
  }
}
export const sdk = [RtsClient, generatePartyKeys, joseCodecFor] as const;
`;

const compile = (name: string, type: 'commonjs' | 'module', options: Record<string, unknown>): string => {
  const dir = join(base, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type }));
  writeFileSync(join(dir, 'main.ts'), consumer);
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { strict: true, skipLibCheck: false, noEmit: true, target: 'es2022', types: ['node'], ...options }, files: ['main.ts'] }),
  );
  try {
    execFileSync(process.execPath, [TSC, '-p', dir], { stdio: 'pipe', cwd: dir });
    return '';
  } catch (e) {
    return String((e as { stdout?: Buffer }).stdout ?? e);
  }
};

it.each([
  ['cjs-node16', 'commonjs', { module: 'node16', moduleResolution: 'node16' }],
  ['esm-node16', 'module', { module: 'node16', moduleResolution: 'node16' }],
  ['esm-bundler', 'module', { module: 'esnext', moduleResolution: 'bundler' }],
  ['cjs-commonjs', 'commonjs', { module: 'commonjs', esModuleInterop: true }],
] as const)('a strict consumer (%s, skipLibCheck off) compiles against the package types', (name, type, options) => {
  expect(compile(name, type, options)).toBe('');
});
