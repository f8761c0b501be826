// The project's jest environment (test/support/settling-environment.js) turns the BigInts of a failed test's errors
// into text, so jest's worker can send the result: without it a failing assertion on a BigInt (a store position, a
// revision) crashed the worker's send, and jest reported the file as "failed to run" with neither the test's name nor
// its assertion (jest's issue 11617). Runs jest itself on two fixture files (two, so jest uses worker processes, as
// the project's runs do; a lone file runs in jest's own process, where nothing is sent).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

jest.setTimeout(120_000);

const root = path.resolve(__dirname, '../..');
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'rts-jest-env-'));
  const fixture = (name: string) =>
    `const shared = { position: 5n, list: [1n] };
test('${name}: a BigInt assertion', () => { expect(shared.position).toBe(6n); });
test('${name}: an object holding BigInts', () => { expect(shared).toEqual({ position: 6n, list: [1n] }); });
test('${name}: the test values are left as they were', () => { expect(typeof shared.position).toBe('bigint'); expect(typeof shared.list[0]).toBe('bigint'); });
test('${name}: an error with a BigInt field', () => { throw Object.assign(new Error('store at'), { position: 7n }); });
test('${name}: a BigInt nested deep', () => { let o = { position: 8n }; for (let i = 0; i < 12; i++) o = { o }; expect(o).toEqual({}); });
test('${name}: a frozen error with a BigInt field', () => { throw Object.freeze(Object.assign(new Error('frozen store at'), { position: 9n })); });
`;
  writeFileSync(path.join(dir, 'a.fixture.js'), fixture('a'));
  writeFileSync(path.join(dir, 'b.fixture.js'), fixture('b'));
  writeFileSync(
    path.join(dir, 'jest.config.js'),
    `module.exports = ${JSON.stringify({ rootDir: dir, testEnvironment: path.join(root, 'test/support/settling-environment.js'), testMatch: ['**/*.fixture.js'], maxWorkers: 2 })};`,
  );
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it('reports each failing test with its BigInt values, and leaves the passing ones passing', () => {
  const run = spawnSync(process.execPath, [require.resolve('jest/bin/jest'), '--config', path.join(dir, 'jest.config.js'), '--ci', '--no-cache'], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' },
  });
  const out = `${run.stdout}\n${run.stderr}`;
  expect(out).not.toMatch(/serialize a BigInt/);
  expect(out).not.toMatch(/Test suite failed to run/);
  for (const name of ['a', 'b']) {
    expect(out).toContain(`● ${name}: a BigInt assertion`);
    expect(out).toContain(`● ${name}: an object holding BigInts`);
    expect(out).toContain(`● ${name}: an error with a BigInt field`);
    expect(out).toContain(`● ${name}: a BigInt nested deep`);
    expect(out).toContain(`● ${name}: a frozen error with a BigInt field`);
  }
  expect(out).toContain('frozen store at');
  expect(out).toContain('Expected: 6n');
  expect(out).toMatch(/Tests:\s+10 failed, 2 passed, 12 total/);
  expect(run.status).toBe(1);
});
