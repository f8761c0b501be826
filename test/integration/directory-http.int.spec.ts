import Fastify, { type FastifyInstance } from 'fastify';
import { DateTime } from 'luxon';
import type { UplinkEnvelope } from '../../src/application/directory/directory-messages';
import { uuidV5 } from '../../src/application/ids';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { registerDirectoryRoutes } from '../../src/adapters/http/directory-routes';
import { sendProblem, toProblem } from '../../src/adapters/http/problem';
import { ExpertsPage, SystemResponse, SystemsList } from '../../src/adapters/http/response-schemas';
import { createDirectoryModule, type DirectoryModule } from '../../src/bootstrap/directory-module';

// fastify's inject needs `cookie`, which ships as ESM only: hand jest the module as Node loads it (as http-api.int.spec.ts).
jest.mock('cookie', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('cookie') as unknown;
});

const clock = { now: () => DateTime.fromISO('2024-05-01T10:00:00Z', { zone: 'utc' }) };
let n = 0;
const ids = { uuid: () => uuidV5(`http-dir/${n++}`) };
const logger = { warn: jest.fn(), error: () => undefined };
const profile = (i: number) => ({
  name: `Expert ${i}`,
  title: 'Physician',
  specialties: [i % 2 === 0 ? 'Cardiology' : 'Oncology'],
  location: { city: i < 5 ? 'Chengdu' : 'Mianyang', hospital: 'H' },
  languages: ['zh'],
  availability: 'available' as const,
});
const msg = (systemId: string, type: string, payload: unknown, key: string) =>
  ({ id: uuidV5(`h/${systemId}/${key}`), type, version: 1, systemId, correlationId: 'c', time: '2024-05-01T10:00:00Z', payload }) as UplinkEnvelope;

describe('directory HTTP routes', () => {
  let app: FastifyInstance;
  let module: DirectoryModule;

  beforeAll(async () => {
    module = createDirectoryModule({ store: new InMemoryEventStore(), clock, ids, logger });
    app = Fastify();
    app.setErrorHandler((error, request, reply) => sendProblem(reply, toProblem(error, request.url)));
    registerDirectoryRoutes(app, { directory: module.service });
    await app.ready();
  });
  afterAll(() => app.close());

  it('registers a system (201, then 200 for the same, 409 for other details) and refuses bad ids', async () => {
    const created = await app.inject({ method: 'POST', url: '/systems', payload: { id: 'chengdu', name: 'Chengdu City', area: 'Chengdu' } });
    expect(created.statusCode).toBe(201);
    expect(created.headers.location).toBe('/systems/chengdu');
    expect(created.json()).toMatchObject({ id: 'chengdu', status: 'registered', downlinkQueue: 'rts.downlink.chengdu', join: null, activeExperts: 0 });
    const again = await app.inject({ method: 'POST', url: '/systems', payload: { id: 'chengdu', name: 'Chengdu City', area: 'Chengdu' } });
    expect(again.statusCode).toBe(200);
    const other = await app.inject({ method: 'POST', url: '/systems', payload: { id: 'chengdu', name: 'Someone else', area: 'Chengdu' } });
    expect(other.statusCode).toBe(409);
    expect(other.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(other.json()).toMatchObject({ code: 'system_already_registered', status: 409 });
    const nul = await app.inject({ method: 'POST', url: '/systems', payload: { id: 'nul-name', name: 'Chengdu\u0000City', area: 'Chengdu\r\nWest' } });
    expect({ status: nul.statusCode, code: nul.json().code, paths: nul.json().errors.map((e: { path: string }) => e.path) }).toEqual({ status: 422, code: 'invalid_system', paths: ['name', 'area'] });
    expect((await app.inject({ url: '/systems/nul-name' })).statusCode).toBe(404);
    for (const id of ['A', 'x', 'has space', 'a'.repeat(33), '-lead']) {
      const bad = await app.inject({ method: 'POST', url: '/systems', payload: { id, name: 'n', area: 'a' } });
      expect(bad.statusCode).toBe(400);
      expect(bad.json()).toMatchObject({ code: 'invalid_request', errors: [{ path: 'body.id' }] });
    }
    expect((await app.inject({ method: 'POST', url: '/systems', payload: { id: 'ok-id', name: 'n', area: 'a', extra: 1 } })).statusCode).toBe(400);
    // A CPR number in the name or area would be stored in clear in SystemRegistered, which erasure cannot reach.
    for (const [name, area, path] of [['Patient 251248-1234 clinic', 'North', 'body.name'], ['City C', '2512481234', 'body.area']] as const) {
      const cpr = await app.inject({ method: 'POST', url: '/systems', payload: { id: 'city-c', name, area } });
      expect(cpr.statusCode).toBe(400);
      expect(cpr.json()).toMatchObject({ code: 'invalid_request', errors: [{ path, message: expect.stringContaining('must not hold a CPR number') }] });
      expect(cpr.body).not.toContain('251248');
    }
    expect((await app.inject({ method: 'GET', url: '/systems/city-c' })).statusCode).toBe(404);
  });

  it('shows join progress while a system uploads, and the experts once it has', async () => {
    await module.uplink.handleUplink(msg('chengdu', 'system.join.requested', { expectedBatches: 2, expectedExperts: 10 }, 'join'));
    await module.uplink.handleUplink(msg('chengdu', 'experts.batch', { batchIndex: 1, batchCount: 2, experts: [5, 6, 7, 8, 9].map((i) => ({ localExpertId: `e-${i}`, ...profile(i) })) }, 'b1'));
    const joining = await app.inject({ url: '/systems/chengdu' });
    expect(joining.json()).toMatchObject({
      status: 'joining',
      join: { expectedBatches: 2, batchesImported: 1, expectedExperts: 10, expertsImported: 5, percent: 50, expertsMissing: null },
      activeExperts: 5,
    });
    expect(SystemResponse.safeParse(joining.json()).error?.issues).toBeUndefined(); // as the OpenAPI document describes it
    await module.uplink.handleUplink(msg('chengdu', 'experts.batch', { batchIndex: 0, batchCount: 2, experts: [0, 1, 2, 3, 4].map((i) => ({ localExpertId: `e-${i}`, ...profile(i) })) }, 'b0'));
    expect((await app.inject({ url: '/systems/chengdu' })).json()).toMatchObject({ status: 'joined', joinedAt: '2024-05-01T10:00:00.000Z', join: { percent: 100, expertsMissing: 0 }, activeExperts: 10 });
    const list = await app.inject({ url: '/systems' });
    expect(list.json().items.map((s: { id: string }) => s.id)).toEqual(['chengdu']);
    expect(SystemsList.safeParse(list.json()).error?.issues).toBeUndefined();
    expect((await app.inject({ url: '/systems/nowhere' })).json()).toMatchObject({ status: 404, code: 'system_not_found' });
    expect((await app.inject({ url: '/systems/NOPE' })).statusCode).toBe(400);
  });

  it('finds experts by specialty, city and language, paged with a cursor', async () => {
    const cardio = await app.inject({ url: '/experts?specialty=cardiology' });
    expect(cardio.statusCode).toBe(200);
    expect(cardio.json().items.map((e: { id: string }) => e.id)).toEqual(['chengdu:e-0', 'chengdu:e-2', 'chengdu:e-4', 'chengdu:e-6', 'chengdu:e-8']);
    expect(cardio.json().nextCursor).toBeNull();
    expect(ExpertsPage.safeParse(cardio.json()).error?.issues).toBeUndefined();
    const both = await app.inject({ url: '/experts?specialty=Oncology&city=Mianyang&language=ZH' });
    expect(both.json().items.map((e: { id: string }) => e.id)).toEqual(['chengdu:e-5', 'chengdu:e-7', 'chengdu:e-9']);

    const seen: string[] = [];
    let url = '/experts?limit=3';
    for (;;) {
      const page = (await app.inject({ url })).json();
      seen.push(...page.items.map((e: { id: string }) => e.id));
      if (!page.nextCursor) break;
      url = `/experts?limit=3&cursor=${page.nextCursor}`;
    }
    expect(seen).toHaveLength(10);
    expect(new Set(seen).size).toBe(10);
    // An empty cursor (a client that passes on a null nextCursor as '') is the first page, not 422 invalid_cursor.
    const empty = await app.inject({ url: '/experts?limit=3&cursor=' });
    expect({ status: empty.statusCode, body: empty.json() }).toEqual({ status: 200, body: (await app.inject({ url: '/experts?limit=3' })).json() });

    const one = await app.inject({ url: '/experts/chengdu:e-3' });
    expect(one.json()).toMatchObject({ id: 'chengdu:e-3', homeSystemId: 'chengdu', localExpertId: 'e-3', status: 'active', revision: 1, profile: profile(3) });
    expect((await app.inject({ url: '/experts/chengdu:e-99' })).json()).toMatchObject({ status: 404, code: 'expert_not_found' });
  });

  it('refuses bad queries with problem+json', async () => {
    for (const url of ['/experts?limit=0', '/experts?limit=501', '/experts?limit=ten', '/experts?colour=red', '/experts?cursor=%25%25']) {
      const res = await app.inject({ url });
      expect(res.statusCode).toBe(url.includes('cursor') ? 422 : 400);
      expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
    }
    expect((await app.inject({ url: '/experts?cursor=bm9wZQ' })).json()).toMatchObject({ code: 'invalid_cursor' });
  });

  it('shows a join that ended with fewer experts than announced, and logs it with ids and counts only', async () => {
    // It ended joined at 100 % with expertsImported 3 of 5 and nothing else to show it.
    await app.inject({ method: 'POST', url: '/systems', payload: { id: 'mianyang', name: 'Mianyang City', area: 'Mianyang' } });
    logger.warn.mockClear();
    await module.uplink.handleUplink(msg('mianyang', 'system.join.requested', { expectedBatches: 1, expectedExperts: 5 }, 'join'));
    await module.uplink.handleUplink(msg('mianyang', 'experts.batch', { batchIndex: 0, batchCount: 1, experts: [0, 1, 2].map((i) => ({ localExpertId: `m-${i}`, ...profile(i), specialties: ['Dermatology'], location: { city: 'Suining', hospital: 'H' }, languages: ['en'] })) }, 'b0'));
    const joined = await app.inject({ url: '/systems/mianyang' });
    expect(joined.json()).toMatchObject({ status: 'joined', join: { expectedExperts: 5, expertsImported: 3, percent: 100, expertsMissing: 2 } });
    expect(SystemResponse.safeParse(joined.json()).error?.issues).toBeUndefined();
    expect(logger.warn.mock.calls).toEqual([
      [{ systemId: 'mianyang', correlationId: 'c', expectedExperts: 5, expertsImported: 3 }, 'join complete with fewer experts than its request announced'],
    ]);
  });
});
