// A start that fails at its last step, the HTTP listen (a port another program holds), stops what it had started.
// Before, startHub rejected with the port's problem but left the projectors, deadlines and the broker connection
// running: the uplink consumer stayed attached to the broker's queue, an embedder's process stayed alive, and the
// store's lock was released under them, so a retry on another port opened the same store again alongside. (The test
// suites' own in-process hubs met this whenever another test took the port their freePort had found.)
import { createServer, type Server } from 'node:net';
import pino from 'pino';
import { requestStatistics } from '../../src/adapters/messaging/broker-statistics';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub } from '../../src/bootstrap/main';
import { getJson, hubEnv, tempDir, until, useBroker } from './hub-support';

jest.setTimeout(120_000);

const amq = useBroker();
const data = tempDir('rts-port-taken-');
let holder: Server;

beforeAll(async () => {
  holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
});
afterAll(async () => {
  await new Promise((resolve) => holder.close(resolve));
  data.remove();
});

/** The uplink queue's consumers as the broker counts them. */
const uplinkConsumers = async (): Promise<number> => {
  const answer = await requestStatistics(amq.connection, { destination: 'rts.uplink', timeoutMs: 10_000 });
  const map = answer.maps.find((m) => m.destinationName === 'queue://rts.uplink');
  return map === undefined ? 0 : Number(map.consumerCount);
};

test('a port in use: the start rejects naming it, leaves no consumer on the broker, and a start on a free port then works', async () => {
  const port = (holder.address() as { port: number }).port;
  const silent = pino({ level: 'silent' });
  await expect(startHub(loadConfig({ ...hubEnv(amq.broker, data.dir), RTS_HTTP_PORT: String(port) }), silent)).rejects.toThrow(/EADDRINUSE|RTS_HTTP_PORT/);

  // The hub had attached its uplink consumer before it tried to listen: it is gone once the start has failed.
  expect(await uplinkConsumers()).toBe(0);

  const hub = await startHub(loadConfig({ ...hubEnv(amq.broker, data.dir), RTS_HTTP_PORT: '0' }), silent);
  try {
    expect((await getJson(hub.url, '/health')).status).toBe(200);
    await until('one uplink consumer, this hub', async () => (await uplinkConsumers()) === 1);
  } finally {
    await hub.stop();
  }
});
