import { DateTime } from 'luxon';
import { Deadlines } from '../../src/application/consultation/deadlines';
import type { DueTimerRow } from '../../src/application/consultation/consultation-read-model';
import type { StepResult } from '../../src/application/consultation/consultation-service';

/**
 * The start grace (offers that ran out while the hub was down stay open START_GRACE_MS after a start) lasts its
 * time whatever the wall clock does meanwhile. A VM's clock is often stepped by NTP just after boot: measured on the
 * wall clock, a step back by an hour held every overdue expiry an hour more, and a step forward ended the grace at
 * once, before the uplink's backlog (an accept sent in time) was read.
 */
const T = DateTime.fromISO('2024-05-01T12:00:00Z', { zone: 'utc' });
const overdue: DueTimerRow = { consultationId: '44444444-2222-4333-8444-000000000001', correlationId: 'c', kind: 'offer', offerIndex: 0, dueAt: '2024-05-01T09:00:00.000Z' };

const runner = (wall: { now: DateTime }, mono: { ms: number }, expired: string[]) =>
  new Deadlines({
    consultations: { dueTimers: async () => [overdue] },
    projector: { catchUp: async () => undefined },
    service: {
      expireOffer: async (id: string) => (expired.push(id), { changed: true, consultation: { report: null } } as unknown as StepResult),
      resendReport: async () => Promise.reject(new Error('none due')),
    },
    clock: { now: () => wall.now },
    monotonicMs: () => mono.ms,
    intervalMs: 60_000,
  });

describe('Deadlines start grace on the monotonic clock', () => {
  it('a wall clock stepped back after the start does not stretch the grace', async () => {
    const wall = { now: T };
    const mono = { ms: 1_000 };
    const expired: string[] = [];
    const deadlines = runner(wall, mono, expired);
    deadlines.start();
    await deadlines.stop(); // its first poll: in the grace, the overdue offer stays open
    expect(expired).toEqual([]);
    wall.now = T.minus({ hours: 1 }).plus({ seconds: 31 }); // NTP stepped the clock back an hour; 31 s went by
    mono.ms += 31_000;
    await deadlines.runOnce();
    expect(expired).toEqual([overdue.consultationId]);
  });

  it('a wall clock stepped forward after the start does not cut the grace short', async () => {
    const wall = { now: T };
    const mono = { ms: 1_000 };
    const expired: string[] = [];
    const deadlines = runner(wall, mono, expired);
    deadlines.start();
    await deadlines.stop();
    wall.now = T.plus({ hours: 1, seconds: 5 }); // stepped an hour ahead; 5 s went by
    mono.ms += 5_000;
    await deadlines.runOnce();
    expect(expired).toEqual([]);
    mono.ms += 26_000;
    await deadlines.runOnce();
    expect(expired).toEqual([overdue.consultationId]);
  });
});
