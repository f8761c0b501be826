import { randomBytes } from 'node:crypto';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { Container } from 'inversify';
import { DateTime } from 'luxon';
import { Client } from 'pg';
import pino from 'pino';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { buildHttpServer } from '../../src/adapters/http/server';
import type { EventStore } from '../../src/application/ports/event-store';
import type { Projector } from '../../src/application/projector';
import type { TeleMedService } from '../../src/application/telemed';
import type { XdsBackend } from '../../src/application/xds-backend';
import { loadConfig } from '../../src/bootstrap/config';
import { TOKENS, buildContainer, openStore } from '../../src/bootstrap/container';
import { createTeleObservation } from '../../src/domain/monitoring/tele-observation';
import { UnavailableError } from '../../src/domain/shared/errors';
import { tempDataDir } from '../support/hub-process';

// fastify's inject needs `cookie`, which ships as ESM only: hand jest the module as Node loads it (as http-api.int.spec.ts).
jest.mock('cookie', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('cookie') as unknown;
});

/**
 * A correction (XDS RPLC) is two appends: the old document's DocumentDeprecated, then the replacement's
 * DocumentSubmitted. A tester's race script saw queries between the two that returned neither reading. Here the
 * replacement's append is held at a gate (or fails, as after a crash), so queries land between the two appends every
 * time, on the real hub wiring: SQLite with the registry kept inline, and PostgreSQL with the projector.
 */
const CPR = '251248-1234';
const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const logger = pino({ level: 'silent' });

/** The event store, with the append of a replacement (a DocumentSubmitted that replaces another) held or failed. */
const gatedReplacements = (store: EventStore) => {
  let mode: 'pass' | 'hold' | 'fail' = 'pass';
  let release: () => void = () => undefined;
  let reached: () => void = () => undefined;
  let reachedGate = Promise.resolve();
  const isReplacement = (events: readonly { type: string; data: Record<string, unknown> }[]) =>
    events.some((e) => e.type === 'DocumentSubmitted' && typeof e.data['replaces'] === 'string');
  const appendToStream: EventStore['appendToStream'] = async (stream, events, options) => {
    if (isReplacement(events) && mode === 'fail') throw new UnavailableError('storage_unavailable', 'the hub stopped before the second append');
    if (isReplacement(events) && mode === 'hold') {
      const gate = new Promise<void>((resolve) => (release = resolve));
      reached();
      await gate;
    }
    return store.appendToStream(stream, events, options);
  };
  const wrapped = new Proxy(store, {
    get: (target, prop) => {
      if (prop === 'appendToStream') return appendToStream;
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return {
    store: wrapped,
    /** The next replacement's append waits at the gate; resolves once it is there (its deprecation committed). */
    hold(): Promise<void> {
      mode = 'hold';
      reachedGate = new Promise<void>((resolve) => (reached = resolve));
      return reachedGate;
    },
    release(): void {
      mode = 'pass';
      release();
    },
    failNext(fail: boolean): void {
      mode = fail ? 'fail' : 'pass';
    },
  };
};

type Hub = Readonly<{
  c: Container;
  gate: ReturnType<typeof gatedReplacements>;
  /** SQLite: append batches whose registry rows were left to the projector (0: every row before a rebuild was inline). */
  inlineDeclined?: () => number;
  close: () => Promise<void>;
}>;

const sqliteHub = async (): Promise<Hub> => {
  const data = tempDataDir('rts-correction-');
  const c = buildContainer(loadConfig({ RTS_DATA_DIR: data.dir, RTS_PSEUDONYM_SECRET: 'ab'.repeat(32) }), logger);
  const gate = gatedReplacements(c.get(SqliteEventStore));
  c.rebind<EventStore>(TOKENS.EventStore).toConstantValue(gate.store); // the registry stays inline on the real store
  return {
    c,
    gate,
    inlineDeclined: () => c.get(SqliteEventStore).stats().inlineDeclined,
    close: async () => {
      await c.get<Projector>(TOKENS.Projector).stop();
      await c.get(SqliteEventStore).close();
      data.remove();
    },
  };
};

const postgresHub = async (): Promise<Hub> => {
  const data = tempDataDir('rts-correction-');
  const schema = `rts_correction_${process.pid}_${randomBytes(4).toString('hex')}`;
  const config = loadConfig({ RTS_DATA_DIR: data.dir, RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: connectionString, RTS_POSTGRES_SCHEMA: schema, RTS_PSEUDONYM_SECRET: 'ab'.repeat(32) });
  const opened = (await openStore(config, logger))!;
  const gate = gatedReplacements(opened.store);
  const c = buildContainer(config, logger, { ...opened, store: gate.store });
  return {
    c,
    gate,
    close: async () => {
      await c.get<Projector>(TOKENS.Projector).stop();
      await opened.store.close();
      const admin = new Client({ connectionString });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
      data.remove();
    },
  };
};

describe.each([
  ['SQLite (registry inline)', sqliteHub],
  ['PostgreSQL (registry by the projector)', postgresHub],
])('a correction on %s: every query sees exactly one of the two readings', (_name, open) => {
  let hub: Hub;
  let app: FastifyInstance;
  let telemed: TeleMedService;
  let xds: XdsBackend;
  let projector: Projector;
  const now = DateTime.utc().startOf('second');
  const measuredAt = now.minus({ hours: 2 }).toISO()!;
  const reading = (systolic: number) => createTeleObservation({ patientId: CPR, systolic, diastolic: 70, measuredAt }, now);

  beforeEach(async () => {
    hub = await open();
    telemed = hub.c.get<TeleMedService>(TOKENS.TeleMed);
    xds = hub.c.get<XdsBackend>(TOKENS.Xds);
    projector = hub.c.get<Projector>(TOKENS.Projector);
    const built: unknown = buildHttpServer({ telemed, xds, clock: { now: () => DateTime.utc() }, logger, health: async () => ({}) });
    app = (typeof (built as FastifyInstance).inject === 'function' ? built : (built as { app: FastifyInstance }).app) as FastifyInstance;
  });

  afterEach(async () => {
    hub.gate.release();
    await app?.close();
    await hub?.close();
  });

  const get = (url: string): Promise<LightMyRequestResponse> => app.inject({ method: 'GET', url });
  /** The patient's readings as GET /patients/{id}/observations answers them: [uniqueId, systolic]. */
  const readings = async (): Promise<[string, number][]> => {
    const response = await get(`/patients/${CPR}/observations`);
    expect(response.statusCode).toBe(200);
    return response.json().observations.map((o: { uniqueId: string; systolic: { value: number } }) => [o.uniqueId, o.systolic.value]);
  };
  const document = async (uniqueId: string) => {
    const response = await get(`/documents/${uniqueId}`);
    return { status: response.statusCode, documentStatus: response.headers['x-document-status'], link: response.headers['link'] };
  };
  /** Both rows as the registry holds them, before and after a rebuild from position 0. */
  const rebuildGivesTheSameRows = async (ids: readonly string[]) => {
    expect(hub.inlineDeclined?.() ?? 0).toBe(0);
    const before = await Promise.all(ids.map((id) => xds.entry(id)));
    await projector.rebuild();
    expect(await Promise.all(ids.map((id) => xds.entry(id)))).toEqual(before);
  };

  it('between the two appends the old reading, from the replacement on the new one; GET /documents agrees', async () => {
    const old = (await telemed.record(reading(126))).uniqueId;
    const deprecated = hub.gate.hold();
    const correcting = telemed.correct(old, reading(128), { correctionId: 'fix-1' });
    await deprecated; // DocumentDeprecated is committed; the replacement's append waits

    for (let i = 0; i < 3; i++) expect(await readings()).toEqual([[old, 126]]); // before the fix: []
    const pending = await xds.entry(old);
    expect(pending).toMatchObject({ status: 'Approved', replacedBy: expect.any(String) });
    expect(await document(old)).toEqual({ status: 200, documentStatus: 'Approved', link: undefined }); // no link to a successor that is not there
    expect((await get(`/documents/${pending.replacedBy}`)).statusCode).toBe(404);
    await rebuildGivesTheSameRows([old]);
    expect(await readings()).toEqual([[old, 126]]);

    // Queries in flight while the replacement commits: each sees one reading, the old or the new.
    const during = Array.from({ length: 12 }, () => readings());
    hub.gate.release();
    const corrected = (await correcting).uniqueId;
    expect(corrected).toBe(pending.replacedBy);
    for (const answer of await Promise.all(during)) expect([[[old, 126]], [[corrected, 128]]]).toContainEqual(answer);

    expect(await readings()).toEqual([[corrected, 128]]);
    expect(await document(old)).toEqual({ status: 200, documentStatus: 'Deprecated', link: `</documents/${corrected}>; rel="successor-version"` });
    expect(await document(corrected)).toEqual({ status: 200, documentStatus: 'Approved', link: `</documents/${old}>; rel="predecessor-version"` });
    await rebuildGivesTheSameRows([old, corrected]);
  });

  it('the replacement never appended (a crash between the two): the old reading stays, and the next correction completes it', async () => {
    const old = (await telemed.record(reading(126))).uniqueId;
    hub.gate.failNext(true);
    await expect(telemed.correct(old, reading(128), { correctionId: 'fix-1' })).rejects.toMatchObject({ code: 'storage_unavailable' });
    hub.gate.failNext(false);

    expect(await readings()).toEqual([[old, 126]]); // before the fix: [] until the next correction
    expect(await document(old)).toEqual({ status: 200, documentStatus: 'Approved', link: undefined });
    const { replacedBy } = await xds.entry(old);
    await rebuildGivesTheSameRows([old]);

    // The next correction, under another id and with other values, registers its document as that replacement.
    const next = await telemed.correct(old, reading(131), { correctionId: 'fix-2' });
    expect(next).toMatchObject({ uniqueId: replacedBy, created: true });
    expect(await readings()).toEqual([[next.uniqueId, 131]]);
    expect(await document(old)).toMatchObject({ documentStatus: 'Deprecated', link: `</documents/${next.uniqueId}>; rel="successor-version"` });
    // The write side's rule holds: a deprecated document is not corrected again.
    await expect(telemed.correct(old, reading(133), { correctionId: 'fix-3' })).rejects.toMatchObject({ code: 'document_deprecated' });
    await rebuildGivesTheSameRows([old, next.uniqueId]);
  });
});
