// GET /metrics as the operator's Prometheus tools read it: `promtool check metrics` (Debian's prometheus package) on a
// live hub's exposition, in the states an operator scrapes it in: the embedded store after uploads, queries and
// refusals over HTTP; real ActiveMQ with systems, experts and dead letters; the broker gone; PostgreSQL as the store.
// promtool checks the format and lints names, units, HELP and TYPE; every state must pass it with nothing to say.
//
// Without promtool the suite skips with one line; under CI (.ci/run installs prometheus and exports
// RTS_REQUIRE_PROMTOOL=1) a missing promtool fails it instead.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import pino from 'pino';
import { Client } from 'pg';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub, type RunningHub } from '../../src/bootstrap/main';
import { promtoolCheckMetrics, promtoolUnavailable } from '../support/promtool';
import { freePort, getJson, postJson, profile, registerSystem, sendRawBody, sendUplink, startInProcessHub, tempDir, until, uplink, useBroker } from './hub-support';

jest.setTimeout(240_000);

// One line, then skip, where promtool is missing; under CI (.ci/run installs it) a missing one fails instead.
const noPromtool = promtoolUnavailable();
if (noPromtool) console.warn(`promtool check metrics skipped: ${noPromtool}`);
const describePromtool = noPromtool ? describe.skip : describe;

const scrape = async (base: string): Promise<string> => {
  const res = await fetch(`${base}/metrics`);
  expect(res.status).toBe(200);
  const text = await res.text();
  if (process.env.RTS_METRICS_DUMP) writeFileSync(`${process.env.RTS_METRICS_DUMP}-${expect.getState().currentTestName?.replace(/\W+/g, '_')}.txt`, text);
  return text;
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
      await registerSystem(hub!.url, 'promtool-a');
      await sendUplink(amq.sender, uplink.registered('promtool-a', 'e1', profile(1)));
      await sendUplink(amq.sender, uplink.registered('ghost-sys', 'g1', profile(2)));
      await sendRawBody(amq.sender, '{ not json');
      await httpTraffic(hub!.url);
      await until('two dead letters counted', async () => (await scrape(hub!.url)).includes('rts_dead_letters 2'), 60_000, 200);
      const text = await scrape(hub!.url);
      expect(text).toContain('rts_uplink_dead_lettered_total{queue="uplink",reason="unknown_system"} 1');
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
        loadConfig({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: url.toString(), RTS_DATA_DIR: data.dir, RTS_HTTP_HOST: '127.0.0.1', RTS_HTTP_PORT: String(await freePort()), RTS_AUTH: 'off' }),
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
