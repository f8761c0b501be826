// GET /metrics as the operator's Prometheus tools read it: `promtool check metrics` (Debian's prometheus package) on a
// live hub's exposition, in the states an operator scrapes it in: real ActiveMQ with systems, experts, a
// consultation, uploads, queries, refusals, dead letters and the downlink queues' depth by system; the same hub with its broker gone; the embedded store with
// its broker down from the start; PostgreSQL as the store. promtool checks the format and lints names, units, HELP
// and TYPE; every state must pass it with nothing to say. Counters of fixed vocabularies must be there at 0.
//
// Before: promtool found nothing to say, but counters appeared only with their first event, so Prometheus's
// increase() never saw the first failover or dead-letter failure (rts_amqp_failovers_total{role="hub"} had no sample).
//
// Without promtool the suite skips with one line; under CI (.ci/run installs prometheus and exports
// RTS_REQUIRE_PROMTOOL=1) a missing promtool fails it instead.
import { randomBytes, randomUUID } from 'node:crypto';
import pino from 'pino';
import { Client } from 'pg';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub, type RunningHub } from '../../src/bootstrap/main';
import type { TestBroker } from '../support/activemq';
import { promtoolCheckMetrics, promtoolUnavailable } from '../support/promtool';
import { freePort, getJson, joinSystem, postJson, profile, registerSystem, sendRawBody, sendUplink, startInProcessHub, tempDir, until, uplink, useBroker } from './hub-support';

jest.setTimeout(240_000);

// One line, then skip, where promtool is missing; under CI (.ci/run installs it) a missing one fails instead.
const noPromtool = promtoolUnavailable();
if (noPromtool) console.warn(`promtool check metrics skipped: ${noPromtool}`);
const describePromtool = noPromtool ? describe.skip : describe;

const scrape = async (base: string): Promise<string> => {
  const res = await fetch(`${base}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
};

const PATIENT = '251248-1234';

/** Uploads, queries and refusals, as the page and the city systems make them. */
const httpTraffic = async (base: string): Promise<void> => {
  expect((await postJson(base, '/observations', { patientId: PATIENT, systolic: 126, diastolic: 70, observationId: 'o-1' })).status).toBe(201);
  expect((await postJson(base, '/observations', { patientId: PATIENT, systolic: 60, diastolic: 70 })).status).toBe(422);
  expect((await getJson(base, `/patients/${PATIENT}/observations`)).status).toBe(200);
  expect((await getJson(base, '/documents/2.25.1')).status).toBe(404);
  expect((await getJson(base, `/no/such/route/${PATIENT}`)).status).toBe(404);
  expect((await getJson(base, '/health')).status).toBe(200);
};

describePromtool(`promtool check metrics on a live hub${noPromtool ? `, skipped: ${noPromtool}` : ''}`, () => {
  test('promtool does say something on an exposition it should refuse (the check below is not a no-op)', async () => {
    const linted = await promtoolCheckMetrics('# HELP rts_things Things\n# TYPE rts_things counter\nrts_things 1\n');
    expect(linted.code).not.toBe(0);
    expect(linted.output).toContain('counter metrics should have "_total" suffix');
  });

  describe('connected to real ActiveMQ, then the broker gone', () => {
    const amq = useBroker();
    const data = tempDir('rts-promtool-');
    let hub: RunningHub | undefined;
    beforeAll(async () => {
      hub = await startInProcessHub(amq.broker, data.dir, { env: { RTS_DEAD_LETTER_DEPTH_EVERY_MS: '1000' } });
    });
    afterAll(async () => {
      await hub?.stop();
      data.remove();
    });

    test('after systems, experts, uploads, queries, refusals and dead letters: promtool finds nothing', async () => {
      // Two systems joined, an expert each, a consultation from one to the other (the downlink publishes it).
      await joinSystem(hub!.url, amq.sender, 'promtool-a');
      await joinSystem(hub!.url, amq.sender, 'promtool-b');
      await sendUplink(amq.sender, uplink.registered('promtool-a', 'e1', profile(1)));
      await sendUplink(amq.sender, uplink.registered('promtool-b', 'e2', profile(2)));
      await until('both experts listed', async () => (await getJson<{ items: unknown[] }>(hub!.url, '/experts')).body.items.length === 2);
      const consultation = { consultationId: randomUUID(), applicantSystemId: 'promtool-a', applicantClinician: 'dr-chen', candidates: ['promtool-b:e2'], clinicalQuestion: 'Second opinion on the CT, please.', summary: 'CT' };
      expect((await postJson(hub!.url, '/consultations', consultation)).status).toBe(201);
      // Refused by the hub: a registration for a system it does not know, a body that is not JSON (dead letters).
      await sendUplink(amq.sender, uplink.registered('promtool-c', 'e3', profile(3)));
            await sendRawBody(amq.sender, '{ not json');
      await httpTraffic(hub!.url);
      await until('two dead letters counted', async () => (await scrape(hub!.url)).includes('rts_dead_letters 2'), 60_000, 200);
      // The downlink queues' depth by system (both systems known and read: a labelled gauge family promtool lints too).
      await until('both downlink queues read', async () => /^rts_downlink_queue_depth\{system="promtool-b"\} \d+$/m.test(await scrape(hub!.url)), 60_000, 200);
      const text = await scrape(hub!.url);
      expect(text).toMatch(/^rts_downlink_queue_depth\{system="promtool-a"\} \d+$/m);
      expect(text).toMatch(/^rts_downlink_oldest_message_age_seconds\{system="promtool-b"\} [\d.e+-]+$/m);
      expect(text).toContain('rts_uplink_dead_lettered_total{queue="uplink",reason="unknown_system"} 1');
      expect(text).toMatch(/^rts_uplink_accepted_total\{queue="uplink"\} 4$/m);
      // Counters of fixed vocabularies are there at 0 before their first event (increase() needs the 0).
      expect(text).toMatch(/^rts_amqp_failovers_total\{role="hub"\} 0$/m);
      expect(text).toMatch(/^rts_uplink_stale_total\{queue="uplink"\} 0$/m);
      expect(text).toMatch(/^rts_downlink_held_released_total 0$/m);
      expect(await promtoolCheckMetrics(text)).toEqual({ code: 0, output: '' });
    });

    test('with the broker gone: promtool finds nothing', async () => {
      await amq.broker.stop();
      await until('the hub sees the broker gone', async () => (await getJson<{ broker: string }>(hub!.url, '/health')).body.broker !== 'connected');
      const text = await scrape(hub!.url);
      expect(text).toMatch(/^rts_amqp_connected\{role="[a-z]+"\} 0$/m);
      // Not connected: the depth families are there without samples (HELP and TYPE only).
      expect(text).toContain('# TYPE rts_downlink_queue_depth gauge');
      expect(text).not.toMatch(/^rts_downlink_queue_depth\{/m);
      expect(await promtoolCheckMetrics(text)).toEqual({ code: 0, output: '' });
    });
  });

  describe('on the embedded store, its broker down from the start', () => {
    const data = tempDir('rts-promtool-down-');
    let hub: RunningHub | undefined;
    beforeAll(async () => {
      // Nothing listens on the port: every connection attempt is refused.
      hub = await startInProcessHub({ url: `amqp://127.0.0.1:${await freePort()}` } as TestBroker, data.dir);
    });
    afterAll(async () => {
      await hub?.stop();
      data.remove();
    });

    test('after uploads, queries and refusals (503 without the broker): promtool finds nothing', async () => {
      await httpTraffic(hub!.url);
      expect((await getJson(hub!.url, '/dead-letters')).status).toBe(503);
      const text = await scrape(hub!.url);
      expect(text).toMatch(/^rts_amqp_connected\{role="hub"\} 0$/m);
      expect(text).toMatch(/^rts_store_file_bytes\{file="events"\} [1-9]\d*$/m);
      expect(text).toMatch(/^rts_http_requests_total\{method="GET",route="\/dead-letters",status="503"\} 1$/m);
      expect(await promtoolCheckMetrics(text)).toEqual({ code: 0, output: '' });
    });
  });

  describe('on PostgreSQL', () => {
    const server = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
    const db = `rts_promtool_${process.pid}_${randomBytes(3).toString('hex')}`;
    const data = tempDir('rts-promtool-pg-');
    let admin: Client | undefined;
    let hub: RunningHub | undefined;
    beforeAll(async () => {
      admin = new Client({ connectionString: server });
      await admin.connect();
      await admin.query(`CREATE DATABASE ${db}`);
      const url = new URL(server);
      url.pathname = `/${db}`;
      hub = await startHub(
        loadConfig({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: url.toString(), RTS_DATA_DIR: data.dir, RTS_HTTP_HOST: '127.0.0.1', RTS_HTTP_PORT: '0', RTS_AUTH: 'off' }),
        pino({ level: 'silent' }),
      );
    });
    afterAll(async () => {
      await hub?.stop();
      await admin?.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      await admin?.end();
      data.remove();
    });

    test('after uploads, queries and refusals: promtool finds nothing', async () => {
      await httpTraffic(hub!.url);
      const text = await scrape(hub!.url);
      expect(text).toMatch(/^rts_http_requests_total\{method="POST",route="\/observations",status="422"\} 1$/m);
      expect(await promtoolCheckMetrics(text)).toEqual({ code: 0, output: '' });
    });
  });
});
