#!/usr/bin/env node
// npm run sbom [-- --out DIR]: two CycloneDX 1.5 documents in DIR (default ./sbom), made offline from the lock:
//
//   telemed-rts.cdx.json  the hub and every npm package production installs (`npm ci --omit=dev`), each with the
//                         SHA-512 npm ci checks it against, its licence and its purl; dependencies between them.
//   activemq.cdx.json     the ActiveMQ Classic broker scripts/activemq/provision.sh installs (its default, or
//                         RTS_ACTIVEMQ_VERSION's, as provision.sh reads it): the 6.x jars
//                         (scripts/activemq/jars-<version>.sha512), each with its SHA-512, licence and purl, or the
//                         5.x binary distribution with the SHA-512 it must match. Beside the hub's, not in it: the
//                         hub does not contain the broker nor load it (the embedded profile runs without one); a
//                         hospital that runs the distributed profile runs this broker, or its own.
//
// Not `npm sbom --omit=dev`: npm 11.19 leaves out of that every production package that a devDependency also
// reaches (40 of them here, pg's pg-types and pg-protocol among them). This asks npm for the whole tree and keeps
// the packages that package-lock.json installs without dev (test/unit/dependency-licences checks those flags
// against a walk of the tree from the root's dependencies).
'use strict';
const { execFileSync } = require('node:child_process');
const { mkdirSync, readFileSync, writeFileSync } = require('node:fs');
const { join, resolve } = require('node:path');

const root = resolve(__dirname, '..');
const args = process.argv.slice(2);
const outAt = args.indexOf('--out');
if (args.length > 0 && (outAt !== 0 || args.length !== 2)) {
  process.stderr.write('usage: npm run sbom [-- --out DIR]\n');
  process.exit(2);
}
const out = resolve(outAt === 0 ? args[1] : join(root, 'sbom'));

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));

const production = new Set();
for (const [path, entry] of Object.entries(lock.packages)) {
  if (path === '' || entry.dev === true) continue;
  production.add(`${path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length)}@${entry.version}`);
}

// --package-lock-only: from the lock, not from whatever node_modules holds; --offline: nothing is fetched.
const whole = JSON.parse(
  execFileSync('npm', ['sbom', '--package-lock-only', '--offline', '--sbom-format=cyclonedx', '--sbom-type=application'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'inherit'],
  }),
);
const self = whole.metadata.component['bom-ref'];
const components = whole.components.filter((c) => production.has(`${c.name}@${c.version}`));
const kept = new Set([self, ...components.map((c) => c['bom-ref'])]);
// The root's own edges: its dependencies, not its devDependencies (some of which production also installs, as a
// dependency's dependency: ajv, @types/node).
const rootNames = Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies });
const rootRefs = new Set(rootNames.map((name) => `${name}@${lock.packages[`node_modules/${name}`].version}`));
const missing = [...production].filter((id) => !components.some((c) => `${c.name}@${c.version}` === id));
if (missing.length > 0) {
  process.stderr.write(`sbom: npm sbom did not list ${missing.join(', ')}\n`);
  process.exit(1);
}
const hub = {
  ...whole,
  // npm names the root component after the folder it runs in (a worktree's, a CI checkout's): the package's name.
  metadata: { ...whole.metadata, component: { ...whole.metadata.component, name: pkg.name } },
  components,
  dependencies: whole.dependencies
    .filter((d) => kept.has(d.ref))
    .map((d) => ({ ...d, dependsOn: (d.dependsOn ?? []).filter((ref) => kept.has(ref) && (d.ref !== self || rootRefs.has(ref))) })),
};

// The broker provision.sh installs: RTS_ACTIVEMQ_VERSION as it reads it, or its default.
const version =
  process.env.RTS_ACTIVEMQ_VERSION || /RTS_ACTIVEMQ_VERSION:-([0-9.]+)\}/.exec(readFileSync(join(root, 'scripts', 'activemq', 'provision.sh'), 'utf8'))?.[1];
const broker = version?.startsWith('5.') ? distributionBom(version) : jarsBom(version);

/** 5.x: the binary distribution provision.sh unpacks, with the SHA-512 it must match. */
function distributionBom(version) {
  const file = `apache-activemq-${version}-bin.tar.gz`;
  const pin = readFileSync(join(root, 'scripts', 'activemq', 'checksums.sha512'), 'utf8')
    .split('\n')
    .map((line) => line.trim().split(/\s+\*?/))
    .find(([, name]) => name === file);
  if (!pin) {
    process.stderr.write(`sbom: scripts/activemq/checksums.sha512 pins no ${file}\n`);
    process.exit(1);
  }
  const purl = `pkg:maven/org.apache.activemq/apache-activemq@${version}?classifier=bin&type=tar.gz`;
  return brokerBom({ 'bom-ref': purl, type: 'application', name: 'apache-activemq', group: 'org.apache.activemq', version, purl }, [
    {
      'bom-ref': `${purl}#tarball`,
      type: 'file',
      name: file,
      version,
      scope: 'required',
      purl,
      hashes: [{ alg: 'SHA-512', content: pin[0] }],
      // The distribution's own licence. It bundles third-party jars under other licences (CDDL 1.1 for JAXB, the
      // MX4J licence, BSD for XStream, among others): listed in the LICENSE and NOTICE files inside the tarball.
      licenses: [{ license: { id: 'Apache-2.0' } }],
      externalReferences: [
        { type: 'distribution', url: `https://repo.maven.apache.org/maven2/org/apache/activemq/apache-activemq/${version}/${file}` },
      ],
    },
  ]);
}

/** 6.x: the jars provision.sh installs (scripts/activemq/jars-<version>.sha512), each with its hash and licence. */
function jarsBom(version) {
  const pinsFile = join(root, 'scripts', 'activemq', `jars-${version}.sha512`);
  let pins;
  try {
    pins = readFileSync(pinsFile, 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '' && !line.startsWith('#'))
      .map((line) => {
        const [sha512, coordinates, ...licence] = line.trim().split(/\s+/);
        const [group, name, jarVersion] = coordinates.split(':');
        return { sha512, group, name, version: jarVersion, licence: licence.join(' '), purl: `pkg:maven/${group}/${name}@${jarVersion}?type=jar` };
      });
  } catch {
    process.stderr.write(`sbom: ActiveMQ ${version ?? '(no version)'} has no jars pinned (${pinsFile})\n`);
    process.exit(1);
  }
  const ref = `activemq-classic@${version}`;
  // No purl: Apache publishes no 6.x distribution on Maven Central; this is the set of jars provision.sh installs.
  const bom = brokerBom(
    { 'bom-ref': ref, type: 'application', name: 'activemq-classic', group: 'org.apache.activemq', version },
    pins.map((jar) => ({
      'bom-ref': jar.purl,
      type: 'library',
      group: jar.group,
      name: jar.name,
      version: jar.version,
      scope: 'required',
      purl: jar.purl,
      hashes: [{ alg: 'SHA-512', content: jar.sha512 }],
      licenses: [jar.licence.includes(' ') ? { expression: jar.licence } : { license: { id: jar.licence } }],
      externalReferences: [
        {
          type: 'distribution',
          url: `https://repo.maven.apache.org/maven2/${jar.group.replace(/\./g, '/')}/${jar.name}/${jar.version}/${jar.name}-${jar.version}.jar`,
        },
      ],
    })),
  );
  return { ...bom, dependencies: [{ ref, dependsOn: pins.map((jar) => jar.purl) }] };
}

function brokerBom(component, components) {
  return {
    $schema: 'http://cyclonedx.org/schema/bom-1.5.schema.json',
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    serialNumber: `urn:uuid:${require('node:crypto').randomUUID()}`,
    version: 1,
    metadata: {
      timestamp: new Date().toISOString(),
      tools: [{ vendor: pkg.name, name: 'scripts/sbom.js', version: pkg.version }],
      component,
    },
    components,
  };
}

mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'telemed-rts.cdx.json'), `${JSON.stringify(hub, null, 2)}\n`);
writeFileSync(join(out, 'activemq.cdx.json'), `${JSON.stringify(broker, null, 2)}\n`);
process.stderr.write(`sbom: ${components.length} npm packages in ${join(out, 'telemed-rts.cdx.json')}; ActiveMQ ${version} in ${join(out, 'activemq.cdx.json')}\n`);
