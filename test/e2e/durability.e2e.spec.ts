import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { dropSchema } from '../support/postgres-schema';
import { devToken, startHub, tempDataDir, type HubProcess } from '../support/hub-process';

/**
 * The hub as a user runs it (dist/, a child process), killed with SIGKILL during a stream of uploads, on the embedded
 * SQLite store and on PostgreSQL: every upload that got a 2xx is there after restart, none is there twice, and each
 * has its audit event in chains that verify whole.
 */
const PATIENTS = ['251248-1234', '010190-2345', '150675-3456', '280261-0123'];
const T0 = Date.parse('2026-11-20T08:00:00Z');
/** A load test of durability, not of the rate limit: lift it so a fast machine is not throttled. */
const UNTHROTTLED = { RTS_RATE_LIMIT_PER_SECOND: '100000', RTS_RATE_LIMIT_BURST: '1000000' };

type Upload = { observationId: string; patientId: string; systolic: number; diastolic: number; measuredAt: string };

/** Each patient uploads and reads with their own token (access control is on, as `npm start` runs it). */
const tokens = new Map<string, string>();
const auth = async (url: string, patientId: string): Promise<Record<string, string>> => {
  const key = `${url}|${patientId}`;
  if (!tokens.has(key)) tokens.set(key, await devToken(url, { role: 'patient', patient: patientId }));
  return { authorization: `Bearer ${tokens.get(key)}` };
};

const upload = async (url: string, u: Upload): Promise<{ status: number; uniqueId?: string; requestId?: string }> => {
  const headers = { 'content-type': 'application/json', ...(await auth(url, u.patientId)) };
  const res = await fetch(`${url}/observations`, { method: 'POST', headers, body: JSON.stringify(u), signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as { uniqueId?: string };
  return { status: res.status, uniqueId: body.uniqueId, requestId: res.headers.get('x-request-id') ?? undefined };
};

type AuditItem = { action: string; requestId: string; outcome: string; status: number };
/** Every audit event of one patient in the last days, page by page. */
const auditOf = async (url: string, operator: string, patient: string): Promise<AuditItem[]> => {
  const items: AuditItem[] = [];
  let cursor: string | undefined;
  do {
    const res = await fetch(`${url}/audit/search`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${operator}` },
      body: JSON.stringify({ patient, ...(cursor ? { cursor } : {}) }),
    });
    expect(res.status).toBe(200);
    const page = (await res.json()) as { items: AuditItem[]; truncated: boolean; nextCursor?: string };
    items.push(...page.items);
    cursor = page.truncated ? page.nextCursor : undefined;
  } while (cursor);
  return items;
};

const observationsOf = async (url: string, patientId: string): Promise<{ uniqueId: string }[]> => {
  const res = await fetch(`${url}/patients/${patientId}/observations?from=2026-11-19T00:00:00Z&to=2026-11-26T00:00:00Z`, { headers: await auth(url, patientId) });
  expect(res.status).toBe(200);
  return ((await res.json()) as { observations: { uniqueId: string }[] }).observations;
};

/** The store of the killed hub: the embedded default, or a fresh schema in the machine's PostgreSQL. */
const PG_URL = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const PG_SCHEMA = `rts_durability_${process.pid}_${randomUUID().slice(0, 8)}`;
const STORES: ReadonlyArray<readonly [string, Record<string, string>]> = [
  ['SQLite', {}],
  // Dev-login is on by default only for the embedded profile; the tokens here come from it all the same.
  ['PostgreSQL', { RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: PG_URL, RTS_POSTGRES_SCHEMA: PG_SCHEMA, RTS_AUTH_DEV_LOGIN: 'on' }],
];

describe.each(STORES)('durability: kill -9 during uploads, on %s (e2e)', (store, storeEnv) => {
  const data = tempDataDir();
  let hub: HubProcess | undefined;

  afterAll(async () => {
    await hub?.kill();
    data.remove();
    if (store === 'PostgreSQL') await dropSchema(PG_URL, PG_SCHEMA);
  });

  it('keeps every acknowledged upload exactly once across a SIGKILL and restart', async () => {
    hub = await startHub({ dataDir: data.dir, env: { RTS_LOG_LEVEL: 'warn', ...UNTHROTTLED, ...storeEnv } });
    const acknowledged = new Map<string, { upload: Upload; uniqueId: string; requestId: string }>();
    const unknown: Upload[] = []; // in flight when the process died: outcome unknown to the client
    let seq = 0;
    const worker = async (): Promise<void> => {
      for (;;) {
        const n = seq++;
        const u: Upload = {
          observationId: randomUUID(),
          patientId: PATIENTS[n % PATIENTS.length]!,
          systolic: 110 + (n % 40),
          diastolic: 60 + (n % 20),
          measuredAt: new Date(T0 + n * 1000).toISOString(),
        };
        try {
          const r = await upload(hub!.url, u);
          if (r.status === 201 || r.status === 200) acknowledged.set(u.observationId, { upload: u, uniqueId: r.uniqueId!, requestId: r.requestId! });
          else throw new Error(`unexpected status ${r.status}`);
        } catch (error) {
          if ((error as Error).message.startsWith('unexpected')) throw error;
          unknown.push(u);
          return; // the server is gone
        }
      }
    };
    const workers = Array.from({ length: 16 }, worker);
    // Let a stream of uploads run, then kill the process in the middle of it.
    while (acknowledged.size < 300) await new Promise((r) => setTimeout(r, 20));
    await hub.kill();
    await Promise.all(workers);
    expect(acknowledged.size).toBeGreaterThanOrEqual(300);

    hub = await startHub({ dataDir: data.dir, env: { RTS_LOG_LEVEL: 'warn', ...UNTHROTTLED, ...storeEnv } });
    const stored = new Map<string, number>();
    for (const p of PATIENTS) for (const o of await observationsOf(hub.url, p)) stored.set(o.uniqueId, (stored.get(o.uniqueId) ?? 0) + 1);

    // Every acknowledged upload is there, once.
    for (const { uniqueId } of acknowledged.values()) expect(stored.get(uniqueId)).toBe(1);
    // Nothing is there twice, and nothing is there that was not sent: at most the acknowledged plus those in flight.
    expect([...stored.values()].every((count) => count === 1)).toBe(true);
    expect(stored.size).toBeGreaterThanOrEqual(acknowledged.size);
    expect(stored.size).toBeLessThanOrEqual(acknowledged.size + unknown.length);

    // A write is answered only once its audit event is stored: each acknowledged upload's is there after the kill,
    // under its request id, and the hash chains are whole (the kill cut no chain in the middle of an append).
    const operator = await devToken(hub.url, { role: 'operator' });
    const verify = (await (await fetch(`${hub.url}/audit/verify`, { headers: { authorization: `Bearer ${operator}` } })).json()) as { ok: boolean; breaks: unknown[]; events: number };
    expect(verify).toMatchObject({ ok: true, breaks: [] });
    expect(verify.events).toBeGreaterThanOrEqual(acknowledged.size);
    const writes = new Set<string>();
    for (const p of PATIENTS) {
      for (const e of await auditOf(hub.url, operator, p)) if (e.action === 'observations.write' && e.outcome === 'allowed' && (e.status === 201 || e.status === 200)) writes.add(e.requestId);
    }
    const unaudited = [...acknowledged.values()].filter((a) => !writes.has(a.requestId));
    expect(unaudited).toEqual([]);

    // The client retries what it never heard back about: each lands exactly once, already-stored ones answer 200.
    for (const u of unknown) expect([200, 201]).toContain((await upload(hub.url, u)).status);
    // And a retry of an acknowledged upload stores nothing new.
    const [first] = acknowledged.values();
    const again = await upload(hub.url, first!.upload);
    expect({ status: again.status, uniqueId: again.uniqueId }).toEqual({ status: 200, uniqueId: first!.uniqueId });
    let total = 0;
    for (const p of PATIENTS) total += (await observationsOf(hub.url, p)).length;
    expect(total).toBe(acknowledged.size + unknown.length);
  });
});

describe('graceful shutdown (e2e)', () => {
  const data = tempDataDir();
  afterAll(() => data.remove());

  it('finishes in-flight requests on SIGTERM, exits 0, and keeps what it acknowledged', async () => {
    const hub = await startHub({ dataDir: data.dir, env: UNTHROTTLED });
    const acknowledged = new Set<string>();
    const other: unknown[] = [];
    let n = 0;
    const worker = async (): Promise<void> => {
      for (;;) {
        const k = n++;
        const u = { observationId: `graceful-${k}`, patientId: PATIENTS[0]!, systolic: 120 + (k % 10), diastolic: 80, measuredAt: new Date(T0 + k * 60_000).toISOString() };
        try {
          const r = await upload(hub.url, u);
          if (r.status === 201) acknowledged.add(r.uniqueId!);
          else if (r.status === 503) return; // closing: the server answers but takes nothing new
          else other.push(r.status);
        } catch {
          return; // refused or closed: the server stopped taking requests
        }
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    while (acknowledged.size < 50) await new Promise((r) => setTimeout(r, 10));
    const code = await hub.stop(); // SIGTERM with uploads in flight
    await Promise.all(workers);
    expect(code).toBe(0);
    expect(other).toEqual([]); // no 5xx but 503-while-closing, no 4xx
    expect(hub.output()).toContain('telemed-rts stopped');

    const again = await startHub({ dataDir: data.dir });
    try {
      const stored = (await observationsOf(again.url, PATIENTS[0]!)).map((o) => o.uniqueId);
      expect(new Set(stored).size).toBe(stored.length);
      for (const id of acknowledged) expect(stored).toContain(id);
    } finally {
      await again.stop();
    }
  });
});

describe('start-up and logs (e2e)', () => {
  it('refuses a bad setting with a message naming it, and exit code 78', async () => {
    const data = tempDataDir();
    try {
      await expect(startHub({ dataDir: data.dir, env: { RTS_LOG_LEVEL: 'loud' } })).rejects.toThrow(/code 78[\s\S]*RTS_LOG_LEVEL/);
    } finally {
      data.remove();
    }
  });

  it('refuses, with exit code 78, to start on a store written with another pseudonym secret', async () => {
    const data = tempDataDir();
    try {
      const first = await startHub({ dataDir: data.dir });
      await first.stop();
      await expect(startHub({ dataDir: data.dir, env: { RTS_PSEUDONYM_SECRET: '9f'.repeat(32) } })).rejects.toThrow(
        /code 78[\s\S]*RTS_PSEUDONYM_SECRET: this store's patients are keyed with another pseudonym secret/,
      );
      const again = await startHub({ dataDir: data.dir });
      await again.stop();
    } finally {
      data.remove();
    }
  });

  it('one hub process per data directory: a second is refused with exit 78 until the first ends, kill -9 included', async () => {
    // Two on one SQLite store both ran before, each with its own key cache: an erasure by one did not stop the
    // other from taking the patient's uploads.
    const data = tempDataDir();
    try {
      const first = await startHub({ dataDir: data.dir });
      await expect(startHub({ dataDir: data.dir })).rejects.toThrow(/code 78[\s\S]*RTS_DATA_DIR: the data directory is in use by another hub or library, in another process or in this one .*another RTS_DATA_DIR/);
      await first.kill();
      const again = await startHub({ dataDir: data.dir });
      expect((await fetch(`${again.url}/health`)).status).toBe(200);
      await again.stop();
    } finally {
      data.remove();
    }
  });

  it('names the setting, with exit code 78, when the port is taken or the data directory cannot be written', async () => {
    const data = tempDataDir();
    const other = tempDataDir();
    try {
      // Another program on the port (its /health answers 503, so the start is not taken for done).
      const squatter = createServer((_req, res) => res.writeHead(503).end());
      await new Promise<void>((ok) => squatter.listen(0, '127.0.0.1', ok));
      try {
        const port = (squatter.address() as AddressInfo).port;
        await expect(startHub({ dataDir: data.dir, port })).rejects.toThrow(/code 78[\s\S]*RTS_HTTP_PORT: another program listens on this port/);
      } finally {
        squatter.close();
      }
      const file = join(other.dir, 'not-a-directory');
      writeFileSync(file, '');
      await expect(startHub({ dataDir: file })).rejects.toThrow(/code 78[\s\S]*RTS_DATA_DIR: the data directory cannot be created or written/);
      // Under a parent that refuses new entries (/proc): the start hung in Node's recursive mkdir.
      await expect(startHub({ dataDir: '/proc/rts-no-such/data' })).rejects.toThrow(/code 78[\s\S]*RTS_DATA_DIR: the data directory cannot be created or written \(ENOENT\)/);
    } finally {
      data.remove();
      other.remove();
    }
  });

  it('never writes a patient identifier to its logs', async () => {
    const data = tempDataDir();
    const hub = await startHub({ dataDir: data.dir, env: { RTS_LOG_LEVEL: 'trace' } });
    try {
      await upload(hub.url, { observationId: 'log-1', patientId: '251248-1234', systolic: 126, diastolic: 70, measuredAt: '2026-11-20T08:00:00Z' });
      const h = await auth(hub.url, '251248-1234');
      await fetch(`${hub.url}/patients/251248-1234/observations?from=2026-11-19T00:00:00Z&to=2026-11-26T00:00:00Z`, { headers: h });
      await fetch(`${hub.url}/patients/251248-1234/observations?from=bad`, { headers: h });
      await fetch(`${hub.url}/patients/010190-2345/observations`, { headers: h }); // another patient's: refused
      await fetch(`${hub.url}/observations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"patientId":"251248-1234",' });
      await fetch(`${hub.url}/observations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"patientId":"251248-1234","systolic":60,"diastolic":70}' });
      // An operator's audit reads and erasures, in the body and in the deprecated URL forms, answered and refused.
      const operator = `Bearer ${await devToken(hub.url, { role: 'operator' })}`;
      const asOperator = async (method: string, path: string, body?: object): Promise<Response> => {
        const headers = { authorization: operator, ...(body ? { 'content-type': 'application/json' } : {}) };
        const res = await fetch(`${hub.url}${path}`, { method, headers, ...(body ? { body: JSON.stringify(body) } : {}) });
        await res.text();
        return res;
      };
      expect((await asOperator('POST', '/audit/search', { patient: '251248-1234' })).status).toBe(200);
      expect((await asOperator('GET', '/audit?patient=251248-1234')).status).toBe(200);
      expect((await asOperator('GET', '/audit?patient=251348-1234')).status).toBe(422);
      expect((await fetch(`${hub.url}/audit?patient=251248-1234`)).status).toBe(401);
      expect((await asOperator('POST', '/erasures', { patient: '010190-2345' })).status).toBe(404);
      expect((await asOperator('DELETE', '/patients/150675-3456')).status).toBe(404);
      expect((await fetch(`${hub.url}/patients/150675-3456`, { method: 'DELETE' })).status).toBe(401);
      expect((await asOperator('DELETE', '/patients/251248-1234?unknown=erase')).status).toBe(200);
      expect((await asOperator('POST', '/erasures', { patient: '280261-0123', unknown: 'erase' })).status).toBe(200);
    } finally {
      await hub.stop();
      data.remove();
    }
    const log = hub.output();
    expect(log).toContain('"route":"/patients/:patientId/observations"');
    // The deprecated forms are logged by their route patterns, the body forms by their paths: no CPR number either way.
    for (const route of ['/patients/:patientId', '/audit', '/erasures', '/audit/search']) expect(log).toContain(`"route":"${route}"`);
    expect(log).toContain('"msg":"patient erased"');
    for (const cpr of ['251248-1234', '010190-2345', '150675-3456', '280261-0123', '251348-1234']) {
      expect(log).not.toContain(cpr);
      expect(log).not.toContain(cpr.replace('-', ''));
    }
  });
});
