import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DateTime } from 'luxon';
import pino from 'pino';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { checkClockAgainstNewestEvent } from '../../src/bootstrap/clock-check';
import { AuditTrail } from '../../src/application/audit/audit-trail';
import { createTeleObservation, openTeleMed, parseCpr } from '../../src';

/**
 * A hub whose clock was set wrong for a while records audit entries on days outside the store's other times: two
 * days ahead (after the clock is mended: after the export's "now"), or 400 days back (before the store's first event).
 * A patient's export read from the day before the first event up to now, and left those entries out without a word.
 * On the embedded SQLite store, through the library, with only Date faked (the clock the hub and SQLite's
 * recorded_at read), timers real.
 */
const A = '251248-1234';
const REAL_TIMERS = ['nextTick', 'setImmediate', 'clearImmediate', 'setInterval', 'clearInterval', 'setTimeout', 'clearTimeout', 'queueMicrotask', 'hrtime', 'performance'] as const;

let dataDir: string;
beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'rts-clock-jumps-'));
});
afterEach(() => {
  jest.useRealTimers();
  rmSync(dataDir, { recursive: true, force: true });
});

/** Date faked at the real now, the library open on the data directory, one reading of A stored. */
const openWithOneReading = async () => {
  const realNow = Date.now();
  jest.useFakeTimers({ doNotFake: [...REAL_TIMERS], now: realNow });
  const rts = await openTeleMed({ dataDir });
  const now = DateTime.utc();
  await rts.telemed.processAndStore(createTeleObservation({ patientId: A, systolic: 130, diastolic: 80, measuredAt: now.minus({ hours: 1 }) }, now));
  return { realNow, rts };
};

it("a patient's export holds the audit entries recorded while the clock ran two days ahead, and 400 days back", async () => {
  const { realNow, rts } = await openWithOneReading();
  try {
    const exportAt = async (ms: number, by: string): Promise<string[]> => {
      jest.setSystemTime(ms);
      const exported = await rts.exportPatient(parseCpr(A), { by });
      return exported.audit.entries.map((e) => e.subject);
    };
    await exportAt(realNow + 2 * 86_400_000, 'dpo-ahead'); // the clock two days ahead
    await exportAt(realNow - 400 * 86_400_000, 'dpo-behind'); // then 400 days back
    // Then right again: an export lists the exports before it (its own entry is stored as it answers).
    expect(await exportAt(realNow + 60_000, 'dpo-mended')).toEqual(['dpo-behind', 'dpo-ahead']);
    const again = await rts.exportPatient(parseCpr(A), { by: 'dpo-again' });
    expect(again.audit.entries.map((e) => e.subject)).toEqual(['dpo-behind', 'dpo-mended', 'dpo-ahead']);
    // The window says how far it reached: from the day of the entry 400 days back to the end of the day two ahead.
    expect(Date.parse(again.audit.from)).toBeLessThanOrEqual(realNow - 400 * 86_400_000);
    expect(Date.parse(again.audit.to)).toBeGreaterThanOrEqual(realNow + 2 * 86_400_000);
  } finally {
    jest.setSystemTime(realNow);
    await rts.close();
  }
});

it('says at start when the clock is behind the newest event in the store (set back), and nothing when it is not', async () => {
  const lines: { level: number; clockBehindStoreSeconds?: number; msg: string }[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const store = new InMemoryEventStore();
  expect(await checkClockAgainstNewestEvent({ store, clock: { now: () => DateTime.utc() }, logger })).toBeNull();
  await store.appendToStream('s-1', [{ id: '7a1c1e2a-1b2c-4d3e-8f4a-5b6c7d8e9f10', type: 'Tested', data: {} }]);
  expect(await checkClockAgainstNewestEvent({ store, clock: { now: () => DateTime.utc() }, logger })).toBeLessThanOrEqual(1);
  expect(lines).toEqual([]);
  const behind = await checkClockAgainstNewestEvent({ store, clock: { now: () => DateTime.utc().minus({ days: 400 }) }, logger });
  expect(behind).toBeGreaterThan(399 * 86_400);
  expect(lines).toEqual([expect.objectContaining({ level: 40, clockBehindStoreSeconds: behind, msg: expect.stringContaining('behind the newest event in the store') })]);
});

it('reads only the days that hold chains: a clock once set 800 years ahead costs a seek, not every day between', async () => {
  const { realNow, rts } = await openWithOneReading();
  try {
    const far = realNow + 800 * 365 * 86_400_000;
    jest.setSystemTime(far);
    await rts.exportPatient(parseCpr(A), { by: 'dpo-far' });
    jest.setSystemTime(realNow + 60_000);
    const reads = jest.spyOn(AuditTrail.prototype, 'byPatient');
    const exported = await rts.exportPatient(parseCpr(A), { by: 'dpo-now' });
    expect(exported.audit.entries.map((e) => e.subject)).toEqual(['dpo-far']);
    expect(Date.parse(exported.audit.to)).toBeGreaterThan(far);
    // Today's chains (one window) and the one far day: walking every day from the first event to it took some 9,500
    // windows of 31 days (6 s on SQLite, the event loop blocked), and the export made at the far time as many.
    expect(reads.mock.calls.length).toBeLessThanOrEqual(3);
  } finally {
    jest.setSystemTime(realNow);
    await rts.close();
  }
});

