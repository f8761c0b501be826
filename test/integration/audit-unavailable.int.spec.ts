jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildHttpServer, type HttpServer } from '../../src/adapters/http/server';
import { MetricsRegistry } from '../../src/adapters/metrics/registry';
import type { Clock } from '../../src/application/ports/clock';
import type { EventStore } from '../../src/application/ports/event-store';
import type { PatientErasure } from '../../src/application/patient-erasure';
import type { PatientKeys } from '../../src/application/ports/patient-keys';
import type { PatientKeyStore } from '../../src/application/ports/patient-data-protection';
import type { Projector } from '../../src/application/projector';
import type { TeleMedService } from '../../src/application/telemed';
import type { XdsBackend } from '../../src/application/xds-backend';
import { parseCpr } from '../../src/domain/monitoring/cpr';
import { loadConfig } from '../../src/bootstrap/config';
import { TOKENS, buildContainer } from '../../src/bootstrap/container';
import { createSecurityModule, type SecurityModule } from '../../src/bootstrap/security-module';
import { tmpfsUnavailable } from '../support/tmpfs';

/**
 * Reads of patient data on a hub whose disk is full (a real SQLite store on a 4 MiB tmpfs this test mounts; root
 * only). The audit trail cannot be written, so reads are refused with 503 audit_unavailable instead of being served
 * unaudited; once there is space again the hub serves them by itself, and every read it served is in the trail.
 */
const cannot = tmpfsUnavailable();
if (cannot) console.warn(`audit-unavailable integration test skipped: ${cannot}`);
const describeFull = cannot ? describe.skip : describe;

const CPR = '251248-1234';

describeFull(`reads while the audit trail cannot be written (full disk${cannot ? `, skipped: ${cannot}` : ''})`, () => {
  const mountPoint = mkdtempSync(join(tmpdir(), 'rts-audit-full-'));
  const filler = join(mountPoint, 'filler');
  let http: HttpServer;
  let store: EventStore;
  let projector: Projector;
  let security: SecurityModule;
  let patientKeys: PatientKeys;
  let keyStore: PatientKeyStore;
  const metrics = new MetricsRegistry();
  let base = '';

  beforeAll(async () => {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', mountPoint], { stdio: 'pipe' });
    const dataDir = join(mountPoint, 'data');
    mkdirSync(dataDir, { mode: 0o700 });
    const config = loadConfig({ RTS_DATA_DIR: dataDir, RTS_RATE_LIMIT_BURST: '100000', RTS_RATE_LIMIT_PER_SECOND: '100000' });
    const logger = pino({ level: 'silent' });
    const c = buildContainer(config, logger);
    store = c.get<EventStore>(TOKENS.EventStore);
    projector = c.get<Projector>(TOKENS.Projector);
    patientKeys = c.get<PatientKeys>(TOKENS.PatientKeys);
    keyStore = c.get<PatientKeyStore>(TOKENS.PatientKeyStore);
    security = createSecurityModule({
      config: { ...config, RTS_AUTH_DEV_LOGIN: 'on' },
      logger,
      store,
      clock: c.get<Clock>(TOKENS.Clock),
      patientKeys,
      xds: c.get<XdsBackend>(TOKENS.Xds),
      erasure: c.get<PatientErasure>(TOKENS.PatientErasure),
      metrics,
    });
    http = buildHttpServer({ telemed: c.get<TeleMedService>(TOKENS.TeleMed), xds: c.get<XdsBackend>(TOKENS.Xds), clock: c.get<Clock>(TOKENS.Clock), logger, health: async () => ({}), beforeRoutes: security.install });
    base = await http.app.listen({ host: '127.0.0.1', port: 0 });
  });

  afterAll(async () => {
    rmSync(filler, { force: true });
    await http?.close(100);
    await security?.close().catch(() => undefined);
    await projector?.stop();
    await store?.close();
    await keyStore?.close();
    try {
      execFileSync('umount', [mountPoint], { stdio: 'pipe' });
    } catch {
      execFileSync('umount', ['-l', mountPoint], { stdio: 'pipe' }); // a file still open: detach it, it goes with the process
    } finally {
      rmSync(mountPoint, { recursive: true, force: true });
    }
  });

  const get = async (url: string, token: string) => {
    const res = await fetch(`${base}${url}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, requestId: res.headers.get('x-request-id')!, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as Record<string, unknown> };
  };
  /** Fills the file system: writes to `filler` until ENOSPC. */
  const fillDisk = () => {
    const fd = openSync(filler, 'w');
    const chunk = Buffer.alloc(64 * 1024, 1);
    try {
      for (;;) writeSync(fd, chunk);
    } catch (error) {
      if ((error as { code?: string }).code !== 'ENOSPC') throw error;
    } finally {
      closeSync(fd);
    }
  };

  it('refuses them with 503 audit_unavailable while appends fail, recovers by itself, and every read served is audited', async () => {
    const token = ((await (await fetch(`${base}/auth/dev-login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ role: 'patient', patient: CPR }) })).json()) as { token: string }).token;
    const upload = await fetch(`${base}/observations`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ patientId: CPR, systolic: 130, diastolic: 80, observationId: 'o-1' }) });
    expect(upload.status).toBe(201);
    const path = `/patients/${CPR}/observations`;
    const served: string[] = [];
    const first = await get(path, token);
    expect(first.status).toBe(200);
    served.push(first.requestId);
    // Its event is appended after the answer: a disk that filled in between would lose it (the window README names).
    await security.audit.drain();

    fillDisk();
    // Uploads fail for want of space until the WAL's reusable room is used up too; then the audit appends fail.
    for (let i = 0; i < 200; i++) {
      const res = await fetch(`${base}/observations`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ patientId: CPR, systolic: 100 + (i % 100), diastolic: 70, observationId: `full-${i}` }) });
      await res.arrayBuffer();
      if (res.status === 503 && security.audit.unwritable) break;
    }
    expect(security.audit.unwritable).toBe(true);
    const refused = [];
    for (let i = 0; i < 5; i++) refused.push(await get(path, token));
    for (const r of refused) {
      expect(r.status).toBe(503);
      expect(r.body).toMatchObject({ code: 'audit_unavailable', type: '/problems/audit_unavailable' });
      expect(r.retryAfter).toBe('5');
    }
    await security.audit.drain(); // the refusals' own events: their appends fail too
    expect(security.audit.unwritable).toBe(true);
    const scraped = metrics.render();
    expect(scraped).toMatch(/^rts_audit_writable 0$/m);
    expect(scraped).toMatch(/^rts_audit_unavailable_reads_total 5$/m);
    expect(scraped).toMatch(/^rts_audit_dropped_total [1-9]\d*$/m);

    // Space again: no restart, no write needed. A read's refusal (or the first read) finds the trail writable.
    rmSync(filler);
    let answer = await get(path, token);
    for (let i = 0; i < 5 && answer.status === 503; i++) {
      await new Promise((r) => setTimeout(r, 50));
      answer = await get(path, token);
    }
    expect(answer.status).toBe(200);
    served.push(answer.requestId);
    for (let i = 0; i < 3; i++) {
      const again = await get(path, token);
      expect(again.status).toBe(200);
      served.push(again.requestId);
    }
    expect(metrics.render()).toMatch(/^rts_audit_writable 1$/m);

    // Every read that was served is in the trail.
    await security.audit.drain();
    const trail = await security.audit.byPatient(patientKeys.keyFor(parseCpr(CPR)), { from: new Date(Date.now() - 3_600_000), to: null, now: new Date() });
    const allowedReads = trail.items.filter((e) => e.action === 'observations.read' && e.outcome === 'allowed').map((e) => e.requestId);
    for (const id of served) expect(allowedReads).toContain(id);
  });
});
