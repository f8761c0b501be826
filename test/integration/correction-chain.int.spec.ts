// 409 document_deprecated names the end of the chain of corrections (currentUniqueId, Link rel="latest-version"),
// following at most MAX_CHAIN_HOPS links. A chain longer than that: the entry reached is deprecated itself, and was
// named "latest-version" (the client corrected it and got 409 again). The plain 409 then, as mid-correction.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { DateTime } from 'luxon';
import pino from 'pino';
import { MAX_CHAIN_HOPS } from '../../src/adapters/http/server';
import type { EventStore } from '../../src/application/ports/event-store';
import type { Projector } from '../../src/application/projector';
import type { TeleMedService } from '../../src/application/telemed';
import { loadConfig } from '../../src/bootstrap/config';
import { TOKENS, buildContainer } from '../../src/bootstrap/container';
import type { Cpr } from '../../src/domain/monitoring/cpr';
import { createTeleObservation, toIsoSeconds } from '../../src/domain/monitoring/tele-observation';
import { httpAppOver } from '../support/http-app';

jest.mock('cookie', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('cookie') as unknown;
});
jest.setTimeout(120_000);

const PATIENT = '251248-1234' as Cpr;
const logger = pino({ level: 'silent' }, new Writable({ write: (_c, _e, done) => done() }));
let dataDir: string;
let app: FastifyInstance;
let store: EventStore;
let projector: Projector;
let telemed: TeleMedService;

beforeAll(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'telemed-chain-'));
  const container = buildContainer(loadConfig({ RTS_DATA_DIR: dataDir, RTS_PSEUDONYM_SECRET: 'ab'.repeat(32) }), logger);
  store = container.get<EventStore>(TOKENS.EventStore);
  projector = container.get<Projector>(TOKENS.Projector);
  telemed = container.get<TeleMedService>(TOKENS.TeleMed);
  app = httpAppOver(container, logger, { bodyLimitBytes: 1_000_000 });
});
afterAll(async () => {
  await app?.close();
  await projector?.stop();
  await store?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test(`a chain of more than ${MAX_CHAIN_HOPS} corrections: the 409 names no deprecated document as the latest version`, async () => {
  const measuredAt = toIsoSeconds(DateTime.utc().startOf('second').minus({ hours: 2 }));
  const reading = (systolic: number) => createTeleObservation({ patientId: PATIENT, systolic, diastolic: 70, measuredAt }, DateTime.utc());
  const first = (await telemed.record(reading(120), { observationId: 'chain-1' })).uniqueId;
  const chain = [first];
  for (let i = 0; i <= MAX_CHAIN_HOPS; i++) chain.push((await telemed.correct(chain[chain.length - 1]!, reading(121 + (i % 50)), { correctionId: `c-${i}` })).uniqueId);
  const post = (uniqueId: string) =>
    app.inject({ method: 'POST', url: `/documents/${uniqueId}/corrections`, payload: { correctionId: 'late', systolic: 99, diastolic: 70, measuredAt } });
  // Within reach: named.
  const near = await post(chain[1]!);
  expect(near.statusCode).toBe(409);
  expect(near.json().currentUniqueId).toBe(chain[chain.length - 1]);
  expect(near.headers['link']).toBe(`</documents/${chain[chain.length - 1]}>; rel="latest-version"`);
  // Out of reach: the plain 409, not a deprecated document named latest-version.
  const far = await post(first);
  expect(far.statusCode).toBe(409);
  expect(far.json().code).toBe('document_deprecated');
  expect(far.json().currentUniqueId).toBeUndefined();
  expect(far.headers['link']).toBeUndefined();
  // A repeat of the upload, out of reach as well: no currentUniqueId, not a deprecated
  // document named as the one that holds the reading now (correcting it answered 409 again).
  const repeat = await telemed.record(reading(120), { observationId: 'chain-1' });
  expect(repeat).toMatchObject({ uniqueId: first, created: false });
  expect(repeat).not.toHaveProperty('currentUniqueId');
  const overHttp = await app.inject({ method: 'POST', url: '/observations', payload: { observationId: 'chain-1', patientId: PATIENT, systolic: 120, diastolic: 70, measuredAt } });
  expect(overHttp.statusCode).toBe(200);
  expect(overHttp.json().currentUniqueId).toBeUndefined();
  // The first correction repeated: its document is within reach of the end, which is named.
  expect(await telemed.correct(first, reading(121), { correctionId: 'c-0' })).toMatchObject({ uniqueId: chain[1], created: false, currentUniqueId: chain[chain.length - 1] });
});
