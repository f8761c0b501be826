// SIGTERM to a hub that never reached its broker. Its downlink publisher had a message in hand (a system's
// join to announce), whose send waited for the broker (up to 2 min): the stop waited for it until the force timer
// (grace + 5 s) ended the process with exit 1. Now the stop fails that send (the event is published again at the
// next start) and the hub exits 0 at once.
import { join } from 'node:path';
import { DateTime } from 'luxon';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { parseUplink } from '../../src/adapters/messaging/messages';
import type { UplinkEnvelope, UplinkPayloads, UplinkType } from '../../src/application/directory/directory-messages';
import { uuidV5 } from '../../src/application/ids';
import { createDirectoryModule } from '../../src/bootstrap/directory-module';
import { freePort, startHub, tempDataDir } from '../support/hub-process';

const clock = { now: () => DateTime.utc() };
let counter = 0;
const ids = { uuid: () => uuidV5(`stop-test/${counter++}`) };

const uplink = <T extends UplinkType>(type: T, payload: UplinkPayloads[T], key: string): UplinkEnvelope => {
  const parsed = parseUplink(JSON.stringify({ id: uuidV5(`msg/${key}`), type, version: 1, systemId: 'city-a', correlationId: 'corr-city-a', time: '2026-11-20T08:00:00Z', payload }));
  if (!parsed.ok) throw new Error(`test message breaks the contract: ${parsed.detail}`);
  return parsed.message;
};

/** A system that joined while the hub was stopped: the next start has its join to publish downlink. */
const joinedSystemIn = async (dataDir: string): Promise<void> => {
  const store = SqliteEventStore.open({ file: join(dataDir, 'telemed.sqlite') });
  const directory = createDirectoryModule({ store, clock, ids, logger: { warn: () => undefined, error: () => undefined } });
  try {
    await directory.service.registerSystem({ systemId: 'city-a', name: 'City A', area: 'Region' });
    await directory.uplink.handleUplink(uplink('system.join.requested', { expectedBatches: 1, expectedExperts: 1 }, 'join'));
    const expert = { localExpertId: 'e1', name: 'Expert 1', title: 'MD', specialties: ['Cardiology'], location: { city: 'A', hospital: 'H' }, languages: ['da'], availability: 'available' as const };
    await directory.uplink.handleUplink(uplink('experts.batch', { batchIndex: 0, batchCount: 1, experts: [expert] }, 'batch'));
  } finally {
    await directory.stop();
    await store.close();
  }
};

describe('stop while the broker was never reached (e2e)', () => {
  it('SIGTERM ends the hub promptly with exit 0, though a downlink message waits for the broker', async () => {
    const data = tempDataDir();
    try {
      await joinedSystemIn(data.dir);
      const nobody = await freePort(); // nothing listens there: every connection attempt is refused
      const hub = await startHub({ dataDir: data.dir, env: { RTS_BROKER_URL: `amqp://127.0.0.1:${nobody}`, RTS_SHUTDOWN_GRACE_MS: '10000', RTS_MESSAGE_SECURITY: 'off' } });
      await new Promise((r) => setTimeout(r, 2000));
      const t0 = Date.now();
      const code = await hub.stop();
      const took = Date.now() - t0;
      expect({ code, took: took < 5000 }).toEqual({ code: 0, took: true });
      expect(hub.output()).not.toContain('shutdown grace period exceeded');
    } finally {
      data.remove();
    }
  });
});
