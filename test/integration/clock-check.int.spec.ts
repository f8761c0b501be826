// Hubs sharing a PostgreSQL store take "now" from their own clocks. An operator's hub with a clock 10 minutes fast
// stored readings that the other hubs' "last 7 days" left out, and nothing said so: the start now compares the
// hub's clock with the database server's and warns.
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { DateTime } from 'luxon';
import { Client } from 'pg';
import pino from 'pino';
import { PostgresEventStore } from '../../src/adapters/event-store/postgres/postgres-event-store';
import { checkClockAgainstStore } from '../../src/bootstrap/clock-check';

const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `rts_clock_${process.pid}_${randomBytes(4).toString('hex')}`;
let store: PostgresEventStore;

beforeAll(async () => {
  store = await PostgresEventStore.open({ connectionString, schema });
});
afterAll(async () => {
  await store.close();
  const admin = new Client({ connectionString });
  await admin.connect();
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

const check = async (offsetMinutes: number) => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(JSON.parse(chunk.toString('utf8'))), done()) }));
  const skew = await checkClockAgainstStore({ serverTimeMillis: () => store.serverTimeMillis(), clock: { now: () => DateTime.utc().plus({ minutes: offsetMinutes }) }, logger });
  return { skew, warnings: lines.filter((l) => l['level'] === 40) };
};

it('says nothing when the hub and the database agree', async () => {
  const { skew, warnings } = await check(0);
  expect(Math.abs(skew!)).toBeLessThan(5);
  expect(warnings).toEqual([]);
});

it('warns, with the difference, when the hub is 10 minutes ahead or behind the database', async () => {
  for (const minutes of [10, -10]) {
    const { skew, warnings } = await check(minutes);
    expect(skew).toBeGreaterThan(minutes * 60 - 5);
    expect(skew).toBeLessThan(minutes * 60 + 5);
    expect(warnings).toEqual([expect.objectContaining({ clockSkewSeconds: skew, msg: expect.stringContaining(minutes > 0 ? 'ahead' : 'behind') })]);
  }
});

it('answers null, and warns of nothing, when the database does not answer', async () => {
  const logger = pino({ level: 'silent' });
  expect(await checkClockAgainstStore({ serverTimeMillis: () => Promise.reject(new Error('ECONNREFUSED')), clock: { now: () => DateTime.utc() }, logger })).toBeNull();
});
