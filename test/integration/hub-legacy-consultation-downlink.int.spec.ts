// A consultation an older build recorded with a pre-UUID id (cons-0001), open with an offer to city-b's expert, in
// the store the new build starts on with a broker: its consultation.offered reaches city-b's downlink queue (it was
// skipped as a contract breach), and the decline notice to the applicant too; a consultation whose old id may hold
// a CPR number still has its messages skipped, and the id is on no message.
import { join } from 'node:path';
import type { Message } from 'rhea';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { DATA_FILES } from '../../src/adapters/system/data-dir';
import type { RunningHub } from '../../src/bootstrap/main';
import { startBroker, type TestBroker } from '../support/activemq';
import { readQueue } from '../support/sdk-queues';
import { downlinkQueue, startInProcessHub, tempDir } from './hub-support';
import { appendOldBuildConsultation } from '../support/old-build-consultation';

jest.setTimeout(180_000);

let broker: TestBroker;
let hub: RunningHub;
const data = tempDir('wt-upgrade-legacy-downlink-');

beforeAll(async () => {
  broker = await startBroker();
  const old = SqliteEventStore.open({ file: join(data.dir, DATA_FILES.events) });
  await appendOldBuildConsultation(old, '251248-1234', 1, 120);
  await appendOldBuildConsultation(old, 'cons-0001', 2, 120);
  await old.close();
  hub = await startInProcessHub(broker, data.dir);
});

afterAll(async () => {
  await hub?.stop();
  await broker?.destroy();
  data.remove();
});

const payloadOf = (m: Message) => (JSON.parse(typeof m.body === 'string' ? m.body : JSON.stringify(m.body)) as { type: string; payload: { consultationId: string } });

it('delivers the messages of a consultation with a pre-UUID id; never one whose id may hold a CPR number', async () => {
  const offered = await readQueue(broker, downlinkQueue('city-b'), { count: 1, idleMs: 15_000, timeoutMs: 30_000 });
  expect(offered.map((m) => [payloadOf(m).type, payloadOf(m).payload.consultationId])).toEqual([['consultation.offered', 'cons-0001']]);

  const declined = await fetch(`${hub.url}/consultations/cons-0001/decline`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ expertId: 'city-b:e3', reason: 'on leave' }) });
  expect(declined.status).toBe(200);
  const [toApplicant] = await readQueue(broker, downlinkQueue('city-a'), { count: 1, idleMs: 15_000, timeoutMs: 30_000 });
  expect(payloadOf(toApplicant!)).toMatchObject({ type: 'consultation.declined', payload: { consultationId: 'cons-0001', outcome: 'declined' } });
  const [toNext] = await readQueue(broker, downlinkQueue('city-c'), { count: 1, idleMs: 15_000, timeoutMs: 30_000 });
  expect(payloadOf(toNext!)).toMatchObject({ type: 'consultation.offered', payload: { consultationId: 'cons-0001', expertId: 'city-c:e1' } });
  for (const m of [...offered, toApplicant!, toNext!]) expect(JSON.stringify(m)).not.toContain('251248');
});
