// POST /audit/search as the operator reads it (and the deprecated GET /audit, which pages alike), on the hub as it
// runs (startHub) over the real SQLite and PostgreSQL stores.
// A tester's finding: an answer stopped silently at 1,000 events, oldest first from the start of the first UTC day,
// and from/to were only turned into whole days; so whoever may read a patient's data could bury their later reads
// of that day under ~1,000 harmless ones, out of the operator's reach. Now: [from, to) by instant, and an answer cut
// at the limit says so (truncated) and carries the cursor of the rest.
jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { signToken } from '../../src/adapters/auth/tokens';
import { MAX_AUDIT_RESULTS } from '../../src/application/audit/audit-trail';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub, type RunningHub } from '../../src/bootstrap/main';
import { tempDataDir } from '../support/hub-process';
import { dropSchema } from '../support/postgres-schema';

jest.setTimeout(180_000);

const CPR = '251248-1234';
const BURIAL = 1005; // more than the limit of one answer
const SECRET = randomBytes(32).toString('hex');
const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

type Item = { at: string; subject: string; requestId: string; patientKey: string | null; action: string };
type Page = { count: number; truncated: boolean; nextCursor: string | null; items: Item[]; from: string; to: string | null; days: { from: string; to: string } };

describe.each(['sqlite', 'postgres'] as const)('POST /audit/search pages through everything, bounded by instant (%s)', (storeKind) => {
  const data = tempDataDir('rts-audit-paging-');
  const schema = `rts_audit_paging_${process.pid}_${randomBytes(4).toString('hex')}`;
  let hub: RunningHub;
  let patient: string;
  let operator: string;

  beforeAll(async () => {
    const postgres = storeKind === 'postgres' ? { RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: connectionString, RTS_POSTGRES_SCHEMA: schema } : {};
    const config = loadConfig({
      RTS_DATA_DIR: data.dir,
      RTS_HTTP_PORT: '0',
      RTS_LOG_LEVEL: 'silent',
      RTS_AUTH_JWT_SECRET: SECRET,
      // This test is about the audit answers; the rate limit is tested elsewhere.
      RTS_RATE_LIMIT_PER_SECOND: '100000',
      RTS_RATE_LIMIT_BURST: '100000',
      ...postgres,
    });
    hub = await startHub(config, pino({ level: 'silent' }));
    const sign = (claims: Parameters<typeof signToken>[1]) => signToken(Buffer.from(SECRET, 'hex'), claims, { issuer: 'telemed-rts', audience: 'telemed-rts', ttlSeconds: 600 });
    patient = await sign({ sub: 'burier', role: 'patient', patient: CPR });
    operator = await sign({ sub: 'ops', role: 'operator' });
    // A reading, so that the patient's reads are answered (a patient with none is 404 unknown_patient).
    const uploaded = await fetch(`${hub.url}/observations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${patient}`, 'content-type': 'application/json', 'x-request-id': 'upload-0' },
      body: JSON.stringify({ observationId: 'o-1', patientId: CPR, systolic: 126, diastolic: 70 }),
    });
    expect(uploaded.status).toBe(201);
  });

  afterAll(async () => {
    await hub?.stop();
    data.remove();
    if (storeKind === 'postgres') await dropSchema(connectionString, schema);
  });

  const read = async (requestId: string): Promise<void> => {
    const res = await fetch(`${hub.url}/patients/${CPR}/observations`, { headers: { authorization: `Bearer ${patient}`, 'x-request-id': requestId } });
    await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe(requestId);
  };
  const reads = async (prefix: string, count: number): Promise<void> => {
    for (let i = 0; i < count; i += 25) await Promise.all(Array.from({ length: Math.min(25, count - i) }, (_, j) => read(`${prefix}-${i + j}`)));
  };
  /** A search as the query strings of GET /audit have it (limit as text): POST /audit/search's body, limit a number. */
  const audit = async (query: Record<string, string>): Promise<{ status: number; contentType: string; body: any }> => {
    const { limit, ...rest } = query;
    const res = await fetch(`${hub.url}/audit/search`, {
      method: 'POST',
      headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...rest, ...(limit !== undefined ? { limit: Number(limit) } : {}) }),
    });
    return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: JSON.parse(await res.text()) };
  };
  /** The same search as the deprecated GET /audit takes it, in the URL. */
  const auditViaUrl = async (query: Record<string, string>): Promise<{ status: number; deprecation: string | null; body: any }> => {
    const res = await fetch(`${hub.url}/audit?${new URLSearchParams(query)}`, { headers: { authorization: `Bearer ${operator}` } });
    return { status: res.status, deprecation: res.headers.get('deprecation'), body: JSON.parse(await res.text()) };
  };
  /** Every page of a query, following nextCursor; `between` runs after each page that has a next. */
  const allPages = async (query: Record<string, string>, between?: () => Promise<void>): Promise<Page[]> => {
    const pages: Page[] = [];
    for (let cursor: string | null = null; ; ) {
      const answer = await audit(cursor === null ? query : { ...query, cursor });
      expect(answer.status).toBe(200);
      const page = answer.body as Page;
      expect(page.count).toBe(page.items.length);
      pages.push(page);
      if (!page.truncated) {
        expect(page.nextCursor).toBeNull();
        return pages;
      }
      expect(typeof page.nextCursor).toBe('string');
      cursor = page.nextCursor;
      await between?.();
    }
  };
  const ids = (pages: Page[]): string[] => pages.flatMap((p) => p.items.map((i) => i.requestId));
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  let start = '';
  let everything: Item[] = [];

  it('finds the read made after 1,005 others: the default answer stops at 1,000, says so, and the cursor gives the rest', async () => {
    await sleep(20);
    start = new Date().toISOString(); // after the upload
    await sleep(20);
    await reads('early', 3);
    await sleep(20);
    await reads('bury', BURIAL);
    await read('marker-1');
    await sleep(20);
    await reads('late', 2);

    const first = await audit({ patient: CPR, from: start });
    expect(first.status).toBe(200);
    // The real default: one answer is bounded, and now says that it was cut.
    expect(MAX_AUDIT_RESULTS).toBe(1000);
    expect(first.body).toMatchObject({ count: 1000, truncated: true, bounds: '[from,to)', to: null });
    expect(first.body.items.map((i: Item) => i.requestId)).not.toContain('marker-1');
    expect(JSON.stringify(first.body)).not.toContain(CPR);

    const pages = await allPages({ patient: CPR, from: start });
    expect(pages.map((p) => p.count)).toEqual([1000, 3 + BURIAL + 1 + 2 - 1000]);
    everything = pages.flatMap((p) => p.items);
    const seen = ids(pages);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toContain('marker-1');
    expect(seen.filter((id) => id.startsWith('bury-'))).toHaveLength(BURIAL);
    // Oldest first: one hub process records in the order of the clock.
    expect(everything.map((i) => i.at)).toEqual([...everything.map((i) => i.at)].sort());
    // Smaller pages give the same events in the same order.
    expect(ids(await allPages({ patient: CPR, from: start, limit: '97' }))).toEqual(seen);
  });

  it('bounds by instant, half-open: nothing before from (also earlier the same day), nothing at or after to', async () => {
    const atOf = (requestId: string) => everything.find((i) => i.requestId === requestId)!.at;
    const buried = everything.filter((i) => i.requestId.startsWith('bury-')).map((i) => i.at).sort();
    const from = buried[0]!; // the first buried read: at from is inside
    const to = atOf('late-0') < atOf('late-1') ? atOf('late-0') : atOf('late-1'); // the first late read: at to is outside
    const expected = everything.filter((i) => i.at >= from && i.at < to).map((i) => i.requestId);
    expect(expected).toHaveLength(BURIAL + 1);

    // The tester's reproduction: from a moment after the day's first events.
    const first = await audit({ patient: CPR, from });
    expect(first.body.count).toBe(1000);
    expect(first.body.truncated).toBe(true);
    expect(first.body.items.every((i: Item) => i.at >= from)).toBe(true);
    expect(first.body.from).toBe(from);

    const pages = await allPages({ patient: CPR, from, to, limit: '100' });
    expect(pages).toHaveLength(Math.ceil((BURIAL + 1) / 100));
    expect(ids(pages)).toEqual(expected);
    expect(ids(pages)).toContain('marker-1');
    expect(ids(pages).some((id) => id.startsWith('early-') || id.startsWith('late-'))).toBe(false);
    expect(pages[0]).toMatchObject({ from, to });
    // A window within one second (milliseconds count), and one that holds nothing but the marker.
    const marker = atOf('marker-1');
    const justMarker = await audit({ patient: CPR, from: marker, to: new Date(Date.parse(marker) + 1).toISOString() });
    expect(justMarker.body.items.map((i: Item) => i.requestId)).toContain('marker-1');
    expect(justMarker.body.items.every((i: Item) => i.at === marker)).toBe(true);
  });

  it('pages the same way by user', async () => {
    const first = await audit({ user: 'burier', from: start });
    expect(first.body).toMatchObject({ user: 'burier', count: 1000, truncated: true });
    const pages = await allPages({ user: 'burier', from: start });
    expect(ids(pages)).toEqual(everything.map((i) => i.requestId));
  });

  it('skips and repeats nothing while new events are recorded between pages', async () => {
    let round = 0;
    const pages = await allPages({ patient: CPR, from: start, limit: '250' }, () => reads(`meanwhile${round++}`, 7));
    const seen = ids(pages);
    expect(new Set(seen).size).toBe(seen.length);
    expect(round).toBeGreaterThan(3);
    // Everything recorded by the end, in the order of one unhurried pass.
    expect(seen).toEqual(ids(await allPages({ patient: CPR, from: start })));
    expect(seen.filter((id) => id.startsWith('meanwhile'))).toHaveLength(7 * round);
  });

  it('pages alike through the deprecated GET /audit: the same pages, and the cursors of either form go on in the other', async () => {
    const query = { patient: CPR, from: start, limit: '300' };
    const viaBody = await allPages(query);
    const viaUrl: Page[] = [];
    for (let cursor: string | null = null; ; ) {
      // Alternating: the first page by URL, the next by body with the URL's cursor, and so on.
      const answer: { status: number; body: Page } = viaUrl.length % 2 === 0 ? await auditViaUrl(cursor === null ? query : { ...query, cursor }) : await audit(cursor === null ? query : { ...query, cursor });
      expect(answer.status).toBe(200);
      viaUrl.push(answer.body);
      if (!answer.body.truncated) break;
      cursor = answer.body.nextCursor;
    }
    expect(viaUrl.length).toBeGreaterThan(2);
    expect(ids(viaUrl)).toEqual(ids(viaBody));
    const first = await auditViaUrl(query);
    expect(first.body).toEqual(viaBody[0]);
    expect(first.deprecation).toMatch(/^@\d{10}$/);
    expect(JSON.stringify(first.body)).not.toContain(CPR);
  });

  it('refuses a cursor it did not give out for this query (422 invalid_cursor), and bad intervals', async () => {
    const first = await audit({ patient: CPR, from: start, limit: '10' });
    const cursor = first.body.nextCursor as string;
    const refusals = [
      { cursor: 'not-a-cursor' },
      { cursor: `${cursor}x` },
      { cursor: Buffer.from('a1|0000000000000000|2026-11-30|0,0,0,0,0,0,0,0').toString('base64url') },
      { cursor: CPR },
    ];
    for (const query of refusals) {
      const answer = await audit({ patient: CPR, from: start, ...query });
      expect({ query, status: answer.status, code: answer.body.code }).toEqual({ query, status: 422, code: 'invalid_cursor' });
      expect(answer.contentType).toContain('application/problem+json');
      expect(JSON.stringify(answer.body)).not.toContain(CPR);
    }
    // Another query's cursor: by user instead of patient, another from, a to added.
    const others: Record<string, string>[] = [
      { user: 'burier', from: start },
      { patient: CPR, from: new Date(Date.parse(start) + 1).toISOString() },
      { patient: CPR, from: start, to: new Date().toISOString() },
    ];
    for (const other of others) {
      expect((await audit({ ...other, cursor })).body.code).toBe('invalid_cursor');
    }
    // The same query goes on; an empty cursor is its first page.
    expect((await audit({ patient: CPR, from: start, limit: '10', cursor })).status).toBe(200);
    expect(await audit({ patient: CPR, from: start, limit: '10', cursor: '' })).toEqual(first);

    const now = Date.now();
    expect((await audit({ patient: CPR, from: start, to: start })).body).toMatchObject({ status: 422, code: 'invalid_interval' });
    expect((await audit({ patient: CPR, from: new Date(now - 32 * 86_400_000).toISOString() })).body).toMatchObject({ status: 422, code: 'interval_too_wide' });
    expect((await audit({ patient: CPR, limit: String(MAX_AUDIT_RESULTS + 1) })).status).toBe(400);
  });
});
