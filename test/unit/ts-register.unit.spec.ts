import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runChild } from '../support/children';

/**
 * test/support/ts-register.js caches what it transpiles, by content: a source changed since is transpiled again,
 * never served from the cache (a child hub running yesterday's code would pass or fail tests for the wrong reasons).
 */
const REGISTER = resolve(__dirname, '..', 'support', 'ts-register.js');
const CACHE_DIR = resolve(__dirname, '..', '..', 'node_modules', '.cache', 'rts-ts-register');

it('runs a TypeScript file, and runs it as changed after a change (the cache is keyed by content)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rts-ts-register-'));
  try {
    const file = join(dir, 'answer.ts');
    const run = async () => {
      const r = await runChild(process.execPath, ['-r', REGISTER, file], {});
      expect(r.code).toBe(0);
      return r.out;
    };
    const stamp = `${process.pid}-${Date.now()}`; // a source no earlier run has cached
    writeFileSync(file, `const answer: string = 'first ${stamp}';\nprocess.stdout.write(answer);\n`);
    expect(await run()).toBe(`first ${stamp}`);
    expect(await run()).toBe(`first ${stamp}`); // from the cache
    writeFileSync(file, `const answer: string = 'second ${stamp}';\nprocess.stdout.write(answer);\n`);
    expect(await run()).toBe(`second ${stamp}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('removes the entries not written for a week when it transpiles, and keeps the newer ones', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rts-ts-register-'));
  mkdirSync(CACHE_DIR, { recursive: true });
  const stamp = `${process.pid}-${Date.now()}`;
  // Names no real entry has (a real one is a SHA-256 in hex): nothing else reads them.
  const old = join(CACHE_DIR, `prune-test-old-${stamp}.js`);
  const recent = join(CACHE_DIR, `prune-test-recent-${stamp}.js`);
  try {
    writeFileSync(old, '');
    writeFileSync(recent, '');
    const eightDaysAgo = (Date.now() - 8 * 24 * 3600 * 1000) / 1000;
    utimesSync(old, eightDaysAgo, eightDaysAgo);
    const sixDaysAgo = (Date.now() - 6 * 24 * 3600 * 1000) / 1000;
    utimesSync(recent, sixDaysAgo, sixDaysAgo);
    const file = join(dir, 'fresh.ts');
    writeFileSync(file, `process.stdout.write('fresh ${stamp}');\n`); // never cached: this run transpiles
    const r = await runChild(process.execPath, ['-r', REGISTER, file], {});
    expect(r.code).toBe(0);
    expect(r.out).toBe(`fresh ${stamp}`);
    expect(existsSync(old)).toBe(false);
    expect(existsSync(recent)).toBe(true);
  } finally {
    rmSync(old, { force: true });
    rmSync(recent, { force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});
