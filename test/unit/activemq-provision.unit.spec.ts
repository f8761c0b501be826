// scripts/activemq/provision.sh unpacks an ActiveMQ tarball only when its SHA-512 is the pinned one. Offline: each
// test puts a small tarball of the distribution's layout (apache-activemq-<version>/lib) where the script looks for
// Maven's copy, and puts a stand-in `mvn` first on PATH that only records that it was called.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const script = resolve(__dirname, '..', '..', 'scripts', 'activemq', 'provision.sh');
const pinned = readFileSync(resolve(__dirname, '..', '..', 'scripts', 'activemq', 'checksums.sha512'), 'utf8');

let dir: string;
let cache: string;
let mvnCalled: string;
let fakeBin: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rts-provision-'));
  cache = join(dir, 'cache');
  fakeBin = join(dir, 'bin');
  mvnCalled = join(dir, 'mvn-called');
  mkdirSync(fakeBin);
  writeFileSync(join(fakeBin, 'mvn'), `#!/bin/sh\necho "$@" > '${mvnCalled}'\nexit 1\n`);
  chmodSync(join(fakeBin, 'mvn'), 0o755);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A tarball of the distribution's layout, in the place where the script finds a copy it fetched; its SHA-512. */
const tarballFor = (version: string, content = 'not the real broker'): string => {
  const src = join(dir, 'src');
  mkdirSync(join(src, `apache-activemq-${version}`, 'lib'), { recursive: true });
  writeFileSync(join(src, `apache-activemq-${version}`, 'lib', 'content.txt'), content);
  mkdirSync(join(cache, 'download'), { recursive: true });
  const tarball = join(cache, 'download', `apache-activemq-${version}-bin.tar.gz`);
  const tar = spawnSync('tar', ['-czf', tarball, '-C', src, `apache-activemq-${version}`], { encoding: 'utf8' });
  if (tar.status !== 0) throw new Error(tar.stderr);
  rmSync(src, { recursive: true });
  return createHash('sha512').update(readFileSync(tarball)).digest('hex');
};

const provision = (env: Record<string, string>) => {
  const run = spawnSync('bash', [script], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { PATH: `${fakeBin}:${process.env.PATH ?? ''}`, HOME: dir, RTS_ACTIVEMQ_CACHE: cache, ...env },
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
};

it('pins a SHA-512 (128 hex digits) for the default version, 5.18.3', () => {
  expect(pinned).toMatch(/^[0-9a-f]{128} {2}apache-activemq-5\.18\.3-bin\.tar\.gz$/m);
});

it('refuses a 5.18.3 tarball that is not the pinned one, names both hashes, and unpacks nothing', () => {
  const actual = tarballFor('5.18.3');
  const run = provision({});
  expect(run.status).toBe(1);
  expect(run.stdout).toBe('');
  expect(run.stderr).toContain('refused: apache-activemq-5.18.3-bin.tar.gz is not the pinned tarball, nothing unpacked');
  expect(run.stderr).toContain(`got      SHA-512 ${actual}`);
  expect(run.stderr).toContain(`expected SHA-512 ${pinned.split(' ')[0]}`);
  expect(existsSync(join(cache, 'apache-activemq-5.18.3'))).toBe(false);
  // The refused copy is removed, so that a later run fetches it again rather than meeting it.
  expect(existsSync(join(cache, 'download', 'apache-activemq-5.18.3-bin.tar.gz'))).toBe(false);
  expect(existsSync(mvnCalled)).toBe(false);
});

it('checks again a home that an earlier provision.sh unpacked without a hash', () => {
  mkdirSync(join(cache, 'apache-activemq-5.18.3', 'lib'), { recursive: true });
  writeFileSync(join(cache, 'apache-activemq-5.18.3', '.rts-provisioned'), '5.18.3\n');
  tarballFor('5.18.3');
  const run = provision({});
  expect(run.status).toBe(1);
  expect(run.stdout).toBe('');
  expect(run.stderr).toContain('is not the pinned tarball');
});

it('refuses a version without a pin and without RTS_ACTIVEMQ_SHA512 before fetching anything, saying how', () => {
  const run = provision({ RTS_ACTIVEMQ_VERSION: '5.99.0' });
  expect(run.status).toBe(1);
  expect(run.stdout).toBe('');
  expect(run.stderr).toContain('refused: no SHA-512 is pinned for ActiveMQ 5.99.0');
  expect(run.stderr).toContain('set RTS_ACTIVEMQ_SHA512');
  expect(existsSync(mvnCalled)).toBe(false);
  expect(existsSync(join(cache, 'apache-activemq-5.99.0'))).toBe(false);
});

it('refuses an RTS_ACTIVEMQ_SHA512 that is no SHA-512', () => {
  tarballFor('5.99.0');
  const run = provision({ RTS_ACTIVEMQ_VERSION: '5.99.0', RTS_ACTIVEMQ_SHA512: 'abc123' });
  expect(run.status).toBe(1);
  expect(run.stderr).toContain('must be 128 hex digits');
  expect(existsSync(join(cache, 'apache-activemq-5.99.0'))).toBe(false);
});

it('unpacks another version whose tarball matches the RTS_ACTIVEMQ_SHA512 given, and refuses it under another', () => {
  const other = tarballFor('5.99.0', 'other');
  const wrong = provision({ RTS_ACTIVEMQ_VERSION: '5.99.0', RTS_ACTIVEMQ_SHA512: createHash('sha512').update('x').digest('hex') });
  expect(wrong.status).toBe(1);
  expect(existsSync(join(cache, 'apache-activemq-5.99.0'))).toBe(false);

  const sha512 = tarballFor('5.99.0');
  expect(sha512).not.toBe(other);
  const run = provision({ RTS_ACTIVEMQ_VERSION: '5.99.0', RTS_ACTIVEMQ_SHA512: sha512.toUpperCase() });
  expect(run.stderr).toContain('matches its pinned SHA-512');
  expect(run.status).toBe(0);
  const home = join(cache, 'apache-activemq-5.99.0');
  expect(run.stdout).toBe(`${home}\n`);
  expect(readFileSync(join(home, 'lib', 'content.txt'), 'utf8')).toBe('not the real broker');
  expect(readFileSync(join(home, '.rts-provisioned'), 'utf8')).toBe(`5.99.0 sha512:${sha512}\n`);
  expect(existsSync(mvnCalled)).toBe(false);
});
