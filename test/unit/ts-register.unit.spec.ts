import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runChild } from '../support/children';

/**
 * test/support/ts-register.js caches what it transpiles, by content: a source changed since is transpiled again,
 * never served from the cache (a child hub running yesterday's code would pass or fail tests for the wrong reasons).
 */
const REGISTER = resolve(__dirname, '..', 'support', 'ts-register.js');

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
