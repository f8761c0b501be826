// jose (the hub keys) ships as ESM only: hand jest the module as Node loads it (as the access tests do).
jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Client } from 'pg';
import { loadHubKeys } from '../../src/adapters/crypto/hub-keys';
import { startHub, tempDataDir, type HubProcess } from '../support/hub-process';

/**
 * Two hub processes (the built program, dist/) on one PostgreSQL schema, taking uploads at the same time for the
 * same patients: the same observationIds sent to both hubs at once, and corrections of the same document sent
 * to both at once. Afterwards: every observation stored exactly once, every acknowledged upload findable, one
 * correction of each document wins, both hubs answer every query the same, and no request got a 5xx (version
 * conflicts between the processes are retried inside the hub). They share one hub key file, as the README says
 * they must; a third process with keys of its own is refused at start.
 */
const ROOT = resolve(__dirname, '..', '..');
const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `rts_two_hubs_${process.pid}_${randomBytes(4).toString('hex')}`;
const SECRET = randomBytes(32).toString('hex');
const PATIENTS = ['251248-1234', '010203-4321', '150590-1111'] as const;
const SHARED_PER_PATIENT = 30; // sent to both hubs at once
const SINGLE_PER_PATIENT = 10; // sent to one hub, alternating

jest.setTimeout(180_000);

let admin: Client;
const hubs: HubProcess[] = [];
const dirs: { remove(): void }[] = [];
let env: Record<string, string> = {};

/** Builds dist/ as `npm start` would. Type errors are the typecheck's job: a build that emitted is enough here. */
const build = (): void => {
  if (process.env['RTS_E2E_SKIP_BUILD'] === '1') return;
  try {
    execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-b', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'pipe' });
  } catch (error) {
    const emitted = ['bootstrap/main.js', 'adapters/registry/postgres-registry.js', 'adapters/event-store/postgres/schema-migrations.js'].every((f) => existsSync(resolve(ROOT, 'dist', f)));
    if (!emitted) throw error;
    process.stderr.write(`two-hubs-postgres: tsc reported errors but emitted dist/; running against it:\n${String((error as { stdout?: Buffer }).stdout ?? '')}\n`);
  }
};

beforeAll(async () => {
  build();
  admin = new Client({ connectionString });
  await admin.connect();
  const keys = tempDataDir('rts-two-hubs-keys-');
  dirs.push(keys);
  const hubKeysFile = (await loadHubKeys({ dataDir: keys.dir })).file;
  env = { RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: connectionString, RTS_POSTGRES_SCHEMA: schema, RTS_PSEUDONYM_SECRET: SECRET, RTS_LOG_LEVEL: 'warn',
    RTS_HUB_KEYS_FILE: hubKeysFile,
    // This test is about two writers on one store; access control and its rate limit are tested elsewhere.
    RTS_AUTH: 'off', RTS_RATE_LIMIT_PER_SECOND: '100000', RTS_RATE_LIMIT_BURST: '1000000' };
  // Started together: both run the migrations at once on the fresh schema.
  const started = await Promise.all(
    [0, 1].map(() => {
      const dir = tempDataDir('rts-two-hubs-');
      dirs.push(dir);
      return startHub({ dataDir: dir.dir, env });
    }),
  );
  hubs.push(...started);
});

afterAll(async () => {
  await Promise.all(hubs.map((h) => h.stop()));
  for (const dir of dirs) dir.remove();
  await admin?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin?.end();
});

type Answer = { status: number; body: Record<string, unknown> };
const answers: Answer[] = [];

const call = async (hub: HubProcess, method: 'GET' | 'POST', path: string, body?: object): Promise<Answer> => {
  const response = await fetch(`${hub.url}${path}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : null,
  });
  const answer = { status: response.status, body: (await response.json()) as Record<string, unknown> };
  answers.push(answer);
  return answer;
};

const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
const hubA = () => hubs[0]!;
const hubB = () => hubs[1]!;

it('two hubs on one PostgreSQL: no lost upload, no duplicate, one correction wins, same answers from both', async () => {
  expect((await call(hubA(), 'GET', '/health')).body).toMatchObject({ status: 'ok', store: 'postgres' });

  // 1. Uploads, all at once: each shared observationId to both hubs concurrently, the rest to one hub each.
  type Upload = { patientId: string; observationId: string; measuredAt: string; systolic: number; shared: boolean };
  const uploads: Upload[] = PATIENTS.flatMap((patientId, p) =>
    Array.from({ length: SHARED_PER_PATIENT + SINGLE_PER_PATIENT }, (_, i) => ({
      patientId,
      observationId: `obs-${p}-${i}`,
      measuredAt: minutesAgo(10 + i * 3 + p),
      systolic: 110 + i,
      shared: i < SHARED_PER_PATIENT,
    })),
  );
  const results = await Promise.all(
    uploads.map(async (u, i) => {
      const body = { observationId: u.observationId, patientId: u.patientId, systolic: u.systolic, diastolic: 70, measuredAt: u.measuredAt };
      const targets = u.shared ? [hubA(), hubB()] : [i % 2 === 0 ? hubA() : hubB()];
      return { upload: u, answers: await Promise.all(targets.map((hub) => call(hub, 'POST', '/observations', body))) };
    }),
  );
  const uniqueIdOf = new Map<string, string>();
  for (const { upload, answers: got } of results) {
    if (upload.shared) {
      // Both hubs answer with the same uniqueId: one stored it (201), the other found it stored (200).
      expect(got.map((a) => a.status).sort()).toEqual([200, 201]);
      expect(got[0]!.body['uniqueId']).toBe(got[1]!.body['uniqueId']);
    } else {
      expect(got.map((a) => a.status)).toEqual([201]);
    }
    uniqueIdOf.set(upload.observationId, String(got[0]!.body['uniqueId']));
  }
  expect(new Set(uniqueIdOf.values()).size).toBe(uploads.length);

  // 2. Corrections of the same document to both hubs at once. Different correctionIds: exactly one wins, the
  //    other is told the document was already replaced. The same correctionId: one stores it, the other finds it.
  const patient0 = uploads.filter((u) => u.patientId === PATIENTS[0]);
  const contested = patient0.slice(0, 6); // uploaded to both hubs
  const repeated = patient0.slice(6, 9);
  const crossHub = patient0.slice(SHARED_PER_PATIENT, SHARED_PER_PATIENT + 4); // uploaded to one hub only
  const replacements = new Map<string, string>();
  await Promise.all([
    ...[...contested, ...crossHub].map(async (u) => {
      const uniqueId = uniqueIdOf.get(u.observationId)!;
      const correction = (tag: string, systolic: number) => ({ correctionId: `fix-${u.observationId}-${tag}`, systolic, diastolic: 71, measuredAt: u.measuredAt });
      const got = await Promise.all([
        call(hubA(), 'POST', `/documents/${uniqueId}/corrections`, correction('a', 150)),
        call(hubB(), 'POST', `/documents/${uniqueId}/corrections`, correction('b', 160)),
      ]);
      const won = got.filter((a) => a.status === 201);
      const lost = got.filter((a) => a.status !== 201);
      expect(won).toHaveLength(1);
      expect(lost.map((a) => [a.status, a.body['code']])).toEqual([[409, 'document_deprecated']]);
      replacements.set(uniqueId, String(won[0]!.body['uniqueId']));
    }),
    ...repeated.map(async (u) => {
      const uniqueId = uniqueIdOf.get(u.observationId)!;
      const correction = { correctionId: `fix-${u.observationId}`, systolic: 140, diastolic: 72, measuredAt: u.measuredAt };
      const got = await Promise.all([hubA(), hubB()].map((hub) => call(hub, 'POST', `/documents/${uniqueId}/corrections`, correction)));
      expect(got.map((a) => a.status).sort()).toEqual([200, 201]);
      expect(got[0]!.body['uniqueId']).toBe(got[1]!.body['uniqueId']);
      replacements.set(uniqueId, String(got[0]!.body['uniqueId']));
    }),
  ]);

  // 3. No 5xx anywhere: conflicts between the two processes were retried, not reported.
  expect(answers.filter((a) => a.status >= 500)).toEqual([]);

  // 4. Each observation stored exactly once, each won correction once, nothing else.
  const { rows: perObservation } = await admin.query(
    `SELECT data->>'observationId' AS observation_id, count(*)::int AS n FROM "${schema}".events
      WHERE event_type = 'DocumentSubmitted' AND data->>'observationId' IS NOT NULL GROUP BY 1`,
  );
  expect(perObservation).toHaveLength(uploads.length);
  expect(perObservation.filter((r: { n: number }) => r.n !== 1)).toEqual([]);
  // The documents' events (the audit trail's AuditRecorded events are counted by the access-control tests).
  const { rows: totals } = await admin.query(`SELECT event_type, count(*)::int AS n FROM "${schema}".events WHERE event_type LIKE 'Document%' GROUP BY 1 ORDER BY 1`);
  expect(totals).toEqual([
    { event_type: 'DocumentDeprecated', n: replacements.size },
    { event_type: 'DocumentSubmitted', n: uploads.length + replacements.size },
  ]);

  // 5. Both hubs give the same answers, and every acknowledged upload is there (or its replacement).
  const from = encodeURIComponent(minutesAgo(24 * 60));
  const to = encodeURIComponent(minutesAgo(-1));
  for (const [p, patientId] of PATIENTS.entries()) {
    const [a, b] = await Promise.all([hubA(), hubB()].map((hub) => call(hub, 'GET', `/patients/${patientId}/observations?from=${from}&to=${to}`)));
    expect(a!.status).toBe(200);
    expect(b!.body['observations']).toEqual(a!.body['observations']);
    const expected = uploads
      .filter((u) => u.patientId === patientId)
      .map((u) => uniqueIdOf.get(u.observationId)!)
      .map((id) => replacements.get(id) ?? id);
    const got = (a!.body['observations'] as { uniqueId: string }[]).map((o) => o.uniqueId);
    expect([...got].sort()).toEqual([...expected].sort());
    expect(got).toHaveLength(SHARED_PER_PATIENT + SINGLE_PER_PATIENT);
    if (p === 0) {
      // A correction's values are what the winner sent.
      const byId = new Map((a!.body['observations'] as { uniqueId: string; systolic: { value: number } }[]).map((o) => [o.uniqueId, o.systolic.value]));
      for (const u of repeated) expect(byId.get(replacements.get(uniqueIdOf.get(u.observationId)!)!)).toBe(140);
      for (const u of contested) expect([150, 160]).toContain(byId.get(replacements.get(uniqueIdOf.get(u.observationId)!)!));
    }
  }

  // The replaced documents are still retrievable from either hub, marked Deprecated.
  const [old] = [...replacements.keys()];
  for (const hub of hubs) {
    const response = await fetch(`${hub.url}/documents/${old}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('x-document-status')).toBe('Deprecated');
    await response.text();
  }
});

it('a third hub process with message keys of its own is refused at start (exit 78), naming RTS_HUB_KEYS_FILE', async () => {
  const dir = tempDataDir('rts-two-hubs-third-');
  dirs.push(dir);
  // Without RTS_HUB_KEYS_FILE it generates keys into its data directory: none of them is the others'.
  const { RTS_HUB_KEYS_FILE: _shared, ...own } = env;
  const refused = startHub({ dataDir: dir.dir, env: own });
  await expect(refused).rejects.toThrow(/hub exited during start \(code 78\)/);
  const message = await refused.catch((e: Error) => e.message);
  expect(message).toContain("RTS_HUB_KEYS_FILE: this store's hub processes use other message keys");
  expect(message).toContain('RTS_HUB_KEYS_ACCEPT_NEW=on');
  // The two running hubs go on serving.
  for (const hub of hubs) expect((await fetch(`${hub.url}/health`)).status).toBe(200);
});
