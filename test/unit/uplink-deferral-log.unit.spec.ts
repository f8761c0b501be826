// The log of uplink messages handed back while the hub cannot store: one line per 10 s, one at the end, and no new
// "outage" for each message that failed during it and comes back after it (src/adapters/messaging/uplink-deferral-log.ts).
import { UplinkDeferralLog } from '../../src/adapters/messaging/uplink-deferral-log';

const recorder = () => {
  const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
  const at = (level: string) => (fields: object, msg: string) => void lines.push({ level, msg, fields: fields as Record<string, unknown> });
  return { lines, logger: { warn: at('warn'), error: at('error'), info: at('info') } };
};

describe('UplinkDeferralLog', () => {
  it('an outage is one warning with its code, its repeats counted, and one line when messages are handled again', () => {
    let t = 0;
    const { lines, logger } = recorder();
    const log = new UplinkDeferralLog(logger, { now: () => t });
    log.deferred('transient failure: storage_unavailable', 1000);
    t = 2000;
    log.deferred('transient failure: storage_unavailable', 2000);
    t = 9000;
    log.deferred('transient failure: storage_unavailable', 4000);
    t = 12_000;
    log.deferred('transient failure: storage_unavailable', 8000);
    t = 13_000;
    log.accepted();
    log.accepted();
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      ['warn', 'uplink messages handed back uncounted: the hub cannot store now; they come again'],
      ['warn', 'uplink messages handed back uncounted: the hub cannot store now; they come again'],
      ['info', 'uplink messages are handled again'],
    ]);
    expect(lines[0]!.fields).toMatchObject({ code: 'storage_unavailable' });
    expect(lines[1]!.fields).toMatchObject({ code: 'storage_unavailable', notLoggedSince: 2 });
  });

  it('messages whose handling failed during the outage and come back after it are no new outage', () => {
    let t = 0;
    const { lines, logger } = recorder();
    const log = new UplinkDeferralLog(logger, { now: () => t });
    log.deferred('transient failure: storage_unavailable', 1000);
    t = 40_000;
    log.accepted(); // the database is back
    // Handed back now, after pauses that began before 40 s: their handling failed during the outage.
    for (let i = 0; i < 20; i++) {
      t += 200;
      log.deferred('transient failure: audit_unavailable', 16_000);
      log.accepted();
    }
    expect(lines.map((l) => l.msg)).toEqual(['uplink messages handed back uncounted: the hub cannot store now; they come again', 'uplink messages are handled again']);
    // A failure after that is a new outage, logged at once.
    t = 60_000;
    log.deferred('transient failure: storage_unavailable', 1000);
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatchObject({ level: 'warn', fields: { code: 'storage_unavailable' } });
  });

  it("a message handed back because the hub is stopping keeps its code (hub_stopping), not 'unavailable'", () => {
    // The consumer hands back what it cannot handle at stop with 'hub_stopping: not handled, the consumer is stopping';
    // before the UplinkDeferralLog its line said code hub_stopping, then 'unavailable', as if the store had failed.
    const { lines, logger } = recorder();
    new UplinkDeferralLog(logger, { now: () => 0 }).deferred('hub_stopping: not handled, the consumer is stopping', 1000);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.fields).toMatchObject({ code: 'hub_stopping' });
  });
});
