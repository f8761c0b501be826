// The package's test scripts select what they say: a tier script takes a path, and test:pg has every suite that
// talks to a real PostgreSQL. Both asked of jest itself (--listTests: nothing is run).
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const root = resolve(__dirname, '..', '..');
const scripts = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;

const listed = (command: string, args: string[]): string[] => {
  const env = { ...process.env };
  delete env.RTS_TEST_TIER;
  const run = spawnSync(command, args, { cwd: root, env, encoding: 'utf8', timeout: 60_000 });
  if (run.status !== 0) throw new Error(`${command} ${args.join(' ')}: exit ${run.status}\n${run.stderr}`);
  return run.stdout
    .split('\n')
    .filter((line) => line.startsWith('/'))
    .map((line) => relative(root, line.trim()))
    .sort();
};

describe('npm test scripts', () => {
  it('npm run test:unit -- <path> runs that file only, not the whole tier', () => {
    expect(listed('npm', ['run', '--silent', 'test:unit', '--', 'test/unit/cpr.unit.spec.ts', '--listTests'])).toEqual(['test/unit/cpr.unit.spec.ts']);
  });

  it('a tier script keeps to its tier', () => {
    const files = listed('npm', ['run', '--silent', 'test:contract', '--', '--listTests']);
    expect(files.length).toBeGreaterThan(0);
    expect(files.filter((f) => !f.endsWith('.contract.spec.ts'))).toEqual([]);
  });

  it('test:pg covers every contract and integration suite that uses the test PostgreSQL', () => {
    // A suite that uses it reads RTS_TEST_PG_URL (the database it picks) or starts a private server.
    const usesPostgres = ['contract', 'integration']
      .flatMap((dir) => readdirSync(join(root, 'test', dir)).filter((f) => f.endsWith('.spec.ts')).map((f) => `test/${dir}/${f}`))
      .filter((f) => /RTS_TEST_PG_URL|support\/private-postgres/.test(readFileSync(join(root, f), 'utf8')))
      .sort();
    expect(usesPostgres.length).toBeGreaterThan(10);
    const [command, ...args] = scripts['test:pg']!.split(/\s+/);
    expect(command).toBe('jest');
    const inScript = listed(process.execPath, [require.resolve('jest/bin/jest'), ...args, '--listTests']);
    expect(usesPostgres.filter((f) => !inScript.includes(f))).toEqual([]);
  });
});
