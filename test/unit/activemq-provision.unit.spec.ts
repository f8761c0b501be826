// scripts/activemq/provision.sh installs ActiveMQ only when it is what the project pinned: for 6.x (the default) the
// jars listed in jars-<version>.sha512, exactly, for 5.x a tarball whose SHA-512 is the pinned one. Offline: a
// stand-in `mvn` first on PATH records that it was called and, for the jars, writes the files a test gives it where
// copy-dependencies would; a tarball test puts a small tarball of the distribution's layout
// (apache-activemq-<version>/lib) where the script looks for Maven's copy.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  // With RTS_TEST_JARS set it copies that folder's files where copy-dependencies would put them; otherwise it fails.
  writeFileSync(
    join(fakeBin, 'mvn'),
    [
      '#!/bin/sh',
      `echo "$@" > '${mvnCalled}'`,
      '[ -n "$RTS_TEST_JARS" ] || exit 1',
      'for a in "$@"; do case "$a" in -DoutputDirectory=*) out="${a#-DoutputDirectory=}" ;; esac; done',
      'mkdir -p "$out" && cp "$RTS_TEST_JARS"/* "$out"/',
      '',
    ].join('\n'),
  );
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

it('pins a SHA-512 (128 hex digits) for 5.18.3, the version a broker rolls back to', () => {
  expect(pinned).toMatch(/^[0-9a-f]{128} {2}apache-activemq-5\.18\.3-bin\.tar\.gz$/m);
});

it('refuses a 5.18.3 tarball that is not the pinned one, names both hashes, and unpacks nothing', () => {
  const actual = tarballFor('5.18.3');
  const run = provision({ RTS_ACTIVEMQ_VERSION: '5.18.3' });
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
  const run = provision({ RTS_ACTIVEMQ_VERSION: '5.18.3' });
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

describe('6.x: the pinned jars', () => {
  const sha512 = (content: string) => createHash('sha512').update(content).digest('hex');
  /** The scripts copied to a folder of their own, with `pins` as jars-6.99.0.sha512 there; the copy's provision.sh. */
  const scriptsWith = (pins: string): string => {
    const copy = join(dir, 'scripts');
    cpSync(resolve(script, '..'), copy, { recursive: true });
    writeFileSync(join(copy, 'jars-6.99.0.sha512'), pins);
    return join(copy, 'provision.sh');
  };
  /** Jars that the stand-in mvn will "fetch": file name to content. */
  const fetched = (jars: Record<string, string>): string => {
    const src = join(dir, 'fetched');
    mkdirSync(src, { recursive: true });
    for (const [name, content] of Object.entries(jars)) writeFileSync(join(src, name), content);
    return src;
  };
  const provisionWith = (provisionSh: string, env: Record<string, string>) => {
    const run = spawnSync('bash', [provisionSh], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { PATH: `${fakeBin}:${process.env.PATH ?? ''}`, HOME: dir, RTS_ACTIVEMQ_CACHE: cache, RTS_ACTIVEMQ_VERSION: '6.99.0', ...env },
    });
    return { status: run.status, stdout: run.stdout, stderr: run.stderr };
  };
  const pinsOf = (jars: Record<string, string>) =>
    Object.entries(jars)
      .map(([coordinates, content]) => `${sha512(content)}  ${coordinates}  Apache-2.0\n`)
      .join('');

  it('pins the jars of 6.3.1, the default version, by SHA-512, with their coordinates and licence', () => {
    expect(readFileSync(script, 'utf8')).toContain('version="${RTS_ACTIVEMQ_VERSION:-6.3.1}"');
    const lines = readFileSync(resolve(script, '..', 'jars-6.3.1.sha512'), 'utf8')
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#'));
    for (const line of lines) expect(line).toMatch(/^[0-9a-f]{128} {2}[^:\s]+:[^:\s]+:[^:\s]+ {2}\S.*$/);
    const coordinates = lines.map((line) => line.split(/\s+/)[1]);
    expect(coordinates).toEqual(expect.arrayContaining(['org.apache.activemq:activemq-broker:6.3.1', 'org.apache.activemq:activemq-amqp:6.3.1', 'org.apache.activemq:activemq-kahadb-store:6.3.1', 'org.apache.activemq:activemq-console:6.3.1']));
    expect(new Set(coordinates).size).toBe(coordinates.length);
  });

  it('installs jars that are exactly the pinned ones into <cache>/activemq-<version>/lib, then only prints the home', () => {
    const provisionSh = scriptsWith(pinsOf({ 'org.example:a:1.0': 'jar a', 'org.example:b:2.0': 'jar b' }));
    const run = provisionWith(provisionSh, { RTS_TEST_JARS: fetched({ 'a-1.0.jar': 'jar a', 'b-2.0.jar': 'jar b' }) });
    expect(run.stderr).toContain('the 2 jars match their pinned SHA-512');
    expect(run.status).toBe(0);
    const home = join(cache, 'activemq-6.99.0');
    expect(run.stdout).toBe(`${home}\n`);
    expect(readdirSync(join(home, 'lib')).sort()).toEqual(['a-1.0.jar', 'b-2.0.jar']);
    expect(readFileSync(join(home, 'lib', 'a-1.0.jar'), 'utf8')).toBe('jar a');
    expect(readFileSync(mvnCalled, 'utf8')).toContain('-Dactivemq.version=6.99.0');

    rmSync(mvnCalled);
    const again = provisionWith(provisionSh, {});
    expect(again).toMatchObject({ status: 0, stdout: `${home}\n` });
    expect(existsSync(mvnCalled)).toBe(false);
  });

  it('refuses a jar whose hash is not the pinned one, names it, and installs nothing', () => {
    const provisionSh = scriptsWith(pinsOf({ 'org.example:a:1.0': 'jar a', 'org.example:b:2.0': 'jar b' }));
    const run = provisionWith(provisionSh, { RTS_TEST_JARS: fetched({ 'a-1.0.jar': 'jar a', 'b-2.0.jar': 'replaced' }) });
    expect(run.status).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('refused: the jars Maven resolved for ActiveMQ 6.99.0 are not the pinned ones, nothing installed');
    expect(run.stderr).toContain(`pinned, not fetched: b-2.0.jar sha512 ${sha512('jar b')}`);
    expect(run.stderr).toContain(`fetched, not pinned: b-2.0.jar sha512 ${sha512('replaced')}`);
    expect(run.stderr).not.toContain('a-1.0.jar');
    expect(existsSync(join(cache, 'activemq-6.99.0'))).toBe(false);
  });

  it('refuses a jar more or a jar less than pinned (a changed dependency tree)', () => {
    const provisionSh = scriptsWith(pinsOf({ 'org.example:a:1.0': 'jar a', 'org.example:b:2.0': 'jar b' }));
    const more = provisionWith(provisionSh, { RTS_TEST_JARS: fetched({ 'a-1.0.jar': 'jar a', 'b-2.0.jar': 'jar b', 'c-3.0.jar': 'jar c' }) });
    expect(more.status).toBe(1);
    expect(more.stderr).toContain(`fetched, not pinned: c-3.0.jar sha512 ${sha512('jar c')}`);
    rmSync(join(dir, 'fetched'), { recursive: true });
    const less = provisionWith(provisionSh, { RTS_TEST_JARS: fetched({ 'a-1.0.jar': 'jar a' }) });
    expect(less.status).toBe(1);
    expect(less.stderr).toContain(`pinned, not fetched: b-2.0.jar sha512 ${sha512('jar b')}`);
    expect(existsSync(join(cache, 'activemq-6.99.0'))).toBe(false);
  });

  it('refuses a 6.x version with no pinned jars before fetching anything, saying how to pin them', () => {
    const run = provision({ RTS_ACTIVEMQ_VERSION: '6.98.0' });
    expect(run.status).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('refused: no jars are pinned for ActiveMQ 6.98.0 (scripts/activemq/jars-6.98.0.sha512 does not exist)');
    expect(existsSync(mvnCalled)).toBe(false);
  });

  it('refuses pins that are not SHA-512s with coordinates, naming the line, before fetching anything', () => {
    const provisionSh = scriptsWith(`# a comment\n${sha512('x')}  org.example:a:1.0  MIT\nabc123  org.example:b:2.0  MIT\n`);
    const run = provisionWith(provisionSh, {});
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('is not a list of');
    expect(run.stderr).toContain('(line 3)');
    expect(existsSync(mvnCalled)).toBe(false);
  });

  it('refuses an RTS_ACTIVEMQ_VERSION that is no version', () => {
    const run = provision({ RTS_ACTIVEMQ_VERSION: '../../etc' });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('RTS_ACTIVEMQ_VERSION must be a version like 6.3.1');
    expect(existsSync(mvnCalled)).toBe(false);
  });
});
