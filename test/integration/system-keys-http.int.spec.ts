// Message keys over HTTP as the exploratory tester drove them: chengdu reads mianyang's public keys (readable by any
// token), offers one as its own, then tries to retire it. Registering is refused with a problem (409
// key_owned_by_other_party), never 201; retiring another system's kid answers exactly as an unknown kid (404
// key_not_found), so kids cannot be probed; mianyang's keys stay as they were.
import Fastify, { type FastifyInstance } from 'fastify';
import { DateTime } from 'luxon';
import { checkPublicJwk } from '../../src/adapters/crypto/hub-keys';
import { KeyRegistry, generatePartyKeys, publicJwks } from '../../src/adapters/crypto/jose-keys';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { registerKeyRoutes } from '../../src/adapters/http/key-routes';
import { sendProblem, toProblem } from '../../src/adapters/http/problem';
import { uuidV5 } from '../../src/application/ids';
import { Projector } from '../../src/application/projector';
import { KeyBookProjection, SystemKeysService } from '../../src/application/security/system-keys-service';
import { createDirectoryModule } from '../../src/bootstrap/directory-module';

// fastify's inject needs `cookie`, which ships as ESM only: hand jest the module as Node loads it (as http-api.int.spec.ts).
jest.mock('cookie', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('cookie') as unknown;
});

const clock = { now: () => DateTime.fromISO('2026-01-01T00:00:00Z', { zone: 'utc' }) };
let n = 0;
const ids = { uuid: () => uuidV5(`http-keys/${n++}`) };
const logger = { warn: () => undefined, error: () => undefined, info: () => undefined, debug: () => undefined } as never;

let app: FastifyInstance;

beforeAll(async () => {
  const store = new InMemoryEventStore();
  const directory = createDirectoryModule({ store, clock, ids, logger });
  for (const systemId of ['chengdu', 'mianyang']) await directory.service.registerSystem({ systemId, name: systemId, area: 'Sichuan' });
  const registry = new KeyRegistry();
  const hub = await generatePartyKeys('hub');
  await registry.register('hub', publicJwks(hub).signing);
  await registry.register('hub', publicJwks(hub).encryption);
  const projector = new Projector(store, new KeyBookProjection(registry), undefined, 1000, 'keys', 0);
  const keys = new SystemKeysService({ store, clock, ids, directory: directory.readModel, directoryProjector: directory.projector, check: checkPublicJwk, owners: registry, projector });
  app = Fastify();
  app.setErrorHandler((error, request, reply) => sendProblem(reply, toProblem(error, request.url)));
  registerKeyRoutes(app, { keys, hubJwks: () => ({ keys: [] }) });
  await app.ready();
});
afterAll(() => app?.close());

it("refuses to register or retire another system's key", async () => {
  for (const systemId of ['chengdu', 'mianyang']) {
    const own = publicJwks(await generatePartyKeys(systemId));
    const created = await app.inject({ method: 'POST', url: `/systems/${systemId}/keys`, payload: { keys: [own.signing, own.encryption] } });
    expect(created.statusCode).toBe(201);
  }
  const theirs = (await app.inject({ method: 'GET', url: '/systems/mianyang/keys' })).json().items as { kid: string; use: string; jwk: object }[];
  expect(theirs).toHaveLength(2);

  for (const key of theirs) {
    const registered = await app.inject({ method: 'POST', url: '/systems/chengdu/keys', payload: { keys: [key.jwk] } });
    expect(registered.statusCode).toBe(409);
    expect(registered.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(registered.json()).toMatchObject({ code: 'key_owned_by_other_party', status: 409, type: '/problems/key_owned_by_other_party', errors: [{ path: 'keys.0' }] });

    const retired = await app.inject({ method: 'POST', url: `/systems/chengdu/keys/${key.kid}/retire`, payload: {} });
    const unknown = await app.inject({ method: 'POST', url: `/systems/chengdu/keys/${'A'.repeat(43)}/retire`, payload: {} });
    expect(retired.statusCode).toBe(404);
    expect(retired.json()).toMatchObject({ code: 'key_not_found' });
    const { instance: _a, ...answer } = retired.json();
    const { instance: _b, ...unknownAnswer } = unknown.json();
    expect(answer).toEqual(unknownAnswer);
  }

  const after = (await app.inject({ method: 'GET', url: '/systems/mianyang/keys' })).json().items as { kid: string; retiresAt: string | null }[];
  expect(after.map((k) => [k.kid, k.retiresAt])).toEqual(theirs.map((k) => [k.kid, null]));
  expect((await app.inject({ method: 'GET', url: '/systems/chengdu/keys' })).json().items.map((k: { kid: string }) => k.kid)).not.toContain(theirs[0]!.kid);
});
