// `npm run sbom` (scripts/sbom.js) writes, offline, a CycloneDX SBOM of exactly what production installs, each
// package with the hash npm ci checks and the licence the lock records, and the broker's beside it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { nameOf, productionTree, type PackageLock } from '../support/package-lock';

const ROOT = resolve(__dirname, '..', '..');

interface Component {
  'bom-ref': string;
  name: string;
  version: string;
  scope?: string;
  purl?: string;
  hashes?: { alg: string; content: string }[];
  licenses?: ({ license: { id: string } } | { expression: string })[];
}
interface Bom {
  bomFormat: string;
  specVersion: string;
  metadata: { component: Component };
  components: Component[];
  dependencies?: { ref: string; dependsOn?: string[] }[];
}

let out: string;
let hub: Bom;
let broker: Bom;
let run: ReturnType<typeof spawnSync>;

beforeAll(() => {
  out = mkdtempSync(join(tmpdir(), 'rts-sbom-'));
  // A registry nothing answers on, and npm told to stay offline: the SBOM must come from the lock alone.
  run = spawnSync(process.execPath, [join(ROOT, 'scripts', 'sbom.js'), '--out', out], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    // provision.sh's default broker (RTS_ACTIVEMQ_VERSION empty is unset to both).
    env: { ...process.env, RTS_ACTIVEMQ_VERSION: '', npm_config_registry: 'http://127.0.0.1:9/', npm_config_offline: 'true' },
  });
  if (run.status !== 0) throw new Error(`scripts/sbom.js: exit ${run.status}\n${String(run.stderr)}`);
  hub = JSON.parse(readFileSync(join(out, 'telemed-rts.cdx.json'), 'utf8')) as Bom;
  broker = JSON.parse(readFileSync(join(out, 'activemq.cdx.json'), 'utf8')) as Bom;
}, 60_000);
afterAll(() => rmSync(out, { recursive: true, force: true }));

const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as PackageLock;
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string; scripts: Record<string, string> };

it('is what npm run sbom runs', () => {
  expect(pkg.scripts['sbom']).toBe('node scripts/sbom.js');
});

it('describes the hub, by its package name, as CycloneDX 1.5', () => {
  expect(hub.bomFormat).toBe('CycloneDX');
  expect(hub.specVersion).toBe('1.5');
  expect(hub.metadata.component).toMatchObject({ name: pkg.name, version: pkg.version, purl: `pkg:npm/${pkg.name}@${pkg.version}` });
});

it('lists every package production installs and nothing else (pg-types too, which npm sbom --omit=dev leaves out)', () => {
  const expected = [...new Set(productionTree(lock).paths.map((path) => `${nameOf(path)}@${lock.packages[path]!.version}`))].sort();
  const listed = hub.components.map((c) => `${c.name}@${c.version}`).sort();
  expect(listed).toEqual(expected);
  expect(listed).toContain(`pg-types@${lock.packages['node_modules/pg-types']!.version}`);
  expect(listed.filter((id) => /^(jest|typescript|ts-jest|@types\/jest)@/.test(id))).toEqual([]);
});

it("gives each package the SHA-512 that npm ci checks it against and the lock's licence", () => {
  const wrong = hub.components.flatMap((c) => {
    const path = Object.keys(lock.packages).find((p) => p !== '' && nameOf(p) === c.name && lock.packages[p]!.version === c.version)!;
    const entry = lock.packages[path]!;
    const sha512 = Buffer.from(entry.integrity!.slice('sha512-'.length), 'base64').toString('hex');
    const licence = c.licenses?.map((l) => ('expression' in l ? l.expression : l.license.id)).join(' AND ');
    const problems: string[] = [];
    if (JSON.stringify(c.hashes) !== JSON.stringify([{ alg: 'SHA-512', content: sha512 }])) problems.push(`${c['bom-ref']}: hashes ${JSON.stringify(c.hashes)}`);
    if (licence !== entry.license) problems.push(`${c['bom-ref']}: licence ${licence}, lock ${String(entry.license)}`);
    if (c.purl !== `pkg:npm/${c.name.replace('@', '%40')}@${c.version}`) problems.push(`${c['bom-ref']}: purl ${c.purl}`);
    return problems;
  });
  expect(wrong).toEqual([]);
});

it('keeps the dependency graph within what it lists', () => {
  const refs = new Set([hub.metadata.component['bom-ref'], ...hub.components.map((c) => c['bom-ref'])]);
  const dangling = (hub.dependencies ?? []).flatMap((d) => [d.ref, ...(d.dependsOn ?? [])]).filter((ref) => !refs.has(ref));
  expect(dangling).toEqual([]);
  const root = hub.dependencies?.find((d) => d.ref === hub.metadata.component['bom-ref']);
  // The hub's own edges are its dependencies, not the devDependencies production happens to install too (ajv).
  const direct = Object.keys(lock.packages['']!.dependencies ?? {}).map((name) => `${name}@${lock.packages[`node_modules/${name}`]!.version}`);
  expect([...(root?.dependsOn ?? [])].sort()).toEqual(direct.sort());
});

it("puts the broker's jars beside it (6.3.1, provision.sh's default), each with the SHA-512 provision.sh requires, its licence and its purl", () => {
  expect(readFileSync(join(ROOT, 'scripts', 'activemq', 'provision.sh'), 'utf8')).toContain('version="${RTS_ACTIVEMQ_VERSION:-6.3.1}"');
  const pins = readFileSync(join(ROOT, 'scripts', 'activemq', 'jars-6.3.1.sha512'), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'))
    .map((line) => line.split(/\s+/));
  expect(broker.metadata.component).toMatchObject({ name: 'activemq-classic', version: '6.3.1' });
  expect(broker.components).toHaveLength(pins.length);
  for (const [sha512, coordinates] of pins) {
    const [group, name, jarVersion] = coordinates!.split(':');
    expect(broker.components).toContainEqual(
      expect.objectContaining({
        name,
        version: jarVersion,
        purl: `pkg:maven/${group}/${name}@${jarVersion}?type=jar`,
        hashes: [{ alg: 'SHA-512', content: sha512 }],
      }),
    );
  }
  expect(broker.components.find((c) => c.name === 'activemq-broker')).toMatchObject({ version: '6.3.1', licenses: [{ license: { id: 'Apache-2.0' } }] });
  expect(broker.components.find((c) => c.name === 'jakarta.jms-api')?.licenses).toEqual([{ expression: 'EPL-2.0 OR GPL-2.0-only WITH Classpath-exception-2.0' }]);
  expect(broker.dependencies?.[0]?.dependsOn).toHaveLength(pins.length);
  expect(hub.components.some((c) => c.name.includes('activemq'))).toBe(false);
});

it("with RTS_ACTIVEMQ_VERSION=5.18.3, lists that version's tarball instead, with the SHA-512 provision.sh requires", () => {
  const out5 = mkdtempSync(join(tmpdir(), 'rts-sbom-5-'));
  try {
    const run5 = spawnSync(process.execPath, [join(ROOT, 'scripts', 'sbom.js'), '--out', out5], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, RTS_ACTIVEMQ_VERSION: '5.18.3', npm_config_registry: 'http://127.0.0.1:9/', npm_config_offline: 'true' },
    });
    expect(run5.status).toBe(0);
    const tarball = JSON.parse(readFileSync(join(out5, 'activemq.cdx.json'), 'utf8')) as Bom;
    const pin = readFileSync(join(ROOT, 'scripts', 'activemq', 'checksums.sha512'), 'utf8').split(/\s+/)[0];
    expect(tarball.metadata.component).toMatchObject({ name: 'apache-activemq', version: '5.18.3' });
    expect(tarball.components).toEqual([
      expect.objectContaining({
        name: 'apache-activemq-5.18.3-bin.tar.gz',
        purl: 'pkg:maven/org.apache.activemq/apache-activemq@5.18.3?classifier=bin&type=tar.gz',
        hashes: [{ alg: 'SHA-512', content: pin }],
        licenses: [{ license: { id: 'Apache-2.0' } }],
      }),
    ]);
  } finally {
    rmSync(out5, { recursive: true, force: true });
  }
}, 60_000);
