// broker.sh (and cluster.sh, through the same broker_launch) stops with a message that names the Java it found and
// what to do when that Java is older than the broker needs: ActiveMQ 6.x (the default home, jars in lib/) needs
// Java 17, 5.18 (bin/activemq.jar) Java 11. Without it an older Java died in UnsupportedClassVersionError, which names
// neither. Offline: a stand-in JDK (bin/java a shell script that prints what it was asked to run, `release` naming
// its version) and a stand-in ActiveMQ home of either kind; nothing is started.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const brokerSh = resolve(__dirname, '..', '..', 'scripts', 'activemq', 'broker.sh');

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rts-broker-java-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A JDK folder whose bin/java echoes its arguments; `release` names `version` unless it is undefined. */
const jdk = (version: string | undefined, specification = version): string => {
  const home = join(dir, `jdk-${version ?? 'unknown'}`);
  mkdirSync(join(home, 'bin'), { recursive: true });
  // Asked for its properties (no release file to read), it answers as a JVM does, on stderr.
  writeFileSync(
    join(home, 'bin', 'java'),
    ['#!/bin/sh', `case "$1" in -XshowSettings*) echo "    java.specification.version = ${specification ?? ''}" >&2; exit 0 ;; esac`, 'echo "fake java ran: $*"', ''].join('\n'),
  );
  chmodSync(join(home, 'bin', 'java'), 0o755);
  if (version !== undefined) writeFileSync(join(home, 'release'), `IMPLEMENTOR="test"\nJAVA_VERSION="${version}"\n`);
  return home;
};

/** An ActiveMQ home: 'jars' (6.x: lib/ only) or 'distribution' (5.x: bin/activemq.jar). */
const activemqHome = (kind: 'jars' | 'distribution'): string => {
  const home = join(dir, `activemq-${kind}`);
  mkdirSync(join(home, 'lib'), { recursive: true });
  if (kind === 'distribution') {
    mkdirSync(join(home, 'bin'), { recursive: true });
    writeFileSync(join(home, 'bin', 'activemq.jar'), '');
  }
  return home;
};

const run = (javaHome: string, home: string) => {
  const r = spawnSync('bash', [brokerSh, 'run'], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { PATH: process.env.PATH ?? '', HOME: dir, JAVA_HOME: javaHome, RTS_ACTIVEMQ_HOME: home, RTS_BROKER_DATA: join(dir, 'data') },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
};

it('refuses Java 11 for ActiveMQ 6.x, naming the Java, the need and the way out', () => {
  const java11 = jdk('11.0.25');
  const r = run(java11, activemqHome('jars'));
  expect(r.status).toBe(2);
  expect(r.stdout).not.toContain('fake java ran');
  expect(r.stderr).toContain(`broker: the ActiveMQ in ${join(dir, 'activemq-jars')} needs Java 17 or later, and ${java11}/bin/java is Java 11`);
  expect(r.stderr).toContain('set JAVA_HOME to a JDK 17 or later (or RTS_ACTIVEMQ_VERSION=5.18.3');
});

it('starts ActiveMQ 6.x on Java 17 and 21', () => {
  for (const version of ['17.0.15', '21.0.5']) {
    const r = run(jdk(version), activemqHome('jars'));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^fake java ran: .*-cp \S+\/lib\/\* org\.apache\.activemq\.console\.Main start xbean:file:/);
  }
});

it('starts ActiveMQ 5.18 on Java 11, and refuses it Java 8 ("1.8" as such a JDK writes it)', () => {
  const ok = run(jdk('11.0.25'), activemqHome('distribution'));
  expect(ok.status).toBe(0);
  expect(ok.stdout).toMatch(/fake java ran: .*-jar \S+\/bin\/activemq\.jar start xbean:file:/);
  const old = run(jdk('1.8.0_412'), activemqHome('distribution'));
  expect(old.status).toBe(2);
  expect(old.stderr).toContain('needs Java 11 or later, and');
  expect(old.stderr).toContain('is Java 8: set JAVA_HOME to a JDK 11 or later\n');
});

it('asks a JDK without a release file for its version', () => {
  const bare = jdk(undefined, '11');
  const r = run(bare, activemqHome('jars'));
  expect(r.status).toBe(2);
  expect(r.stderr).toContain('is Java 11: set JAVA_HOME to a JDK 17 or later');
});

it('says so when there is no java at all', () => {
  const r = run(join(dir, 'no-jdk-here'), activemqHome('jars'));
  expect(r.status).toBe(2);
  expect(r.stderr).toContain(`broker: the broker needs Java 17 or later, and there is no ${join(dir, 'no-jdk-here')}/bin/java (install a JDK, or set JAVA_HOME to one)`);
});
