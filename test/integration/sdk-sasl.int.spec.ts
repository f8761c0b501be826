// The SDK against a broker that requires a SASL layer and has no accounts: ActiveMQ's own default, and the production
// activemq.xml of scripts/cluster/README.md. A review's city system (RtsClient.connect({ systemId, url })) was refused
// there with "it requires a login", though none was needed: the SDK sent no SASL layer. It logs in as the hub does,
// with SASL ANONYMOUS, unless told otherwise.
import { RtsClient } from '../../src/sdk';
import { startBroker, type TestBroker } from '../support/activemq';
import { readQueue } from '../support/sdk-queues';

jest.setTimeout(90_000);

let broker: TestBroker;
beforeAll(async () => {
  broker = await startBroker({ nonSasl: false });
});
afterAll(async () => {
  await broker?.destroy();
});

it('connects with SASL ANONYMOUS by default and sends; asked for no SASL layer, it is refused with what to do', async () => {
  const systemId = `sasl-${process.pid % 1000}`;
  const client = await RtsClient.connect({ systemId, url: broker.url, uplinkQueue: `rts.test.uplink.${systemId}`, deadLetterQueue: `rts.test.dlq.${systemId}` });
  try {
    const id = await client.registerExpert('dr-0042', { name: 'Li Wei', title: 'Chief physician', specialties: ['cardiology'], location: { city: 'Chengdu', hospital: 'West China Hospital' }, languages: ['zh'], availability: 'available' });
    const got = await readQueue(broker, client.uplinkQueue, { count: 1, anonymous: true });
    expect(got.map((m) => m.application_properties?.['messageId'])).toEqual([id]);
  } finally {
    await client.close();
  }
  // The old default, asked for: the broker wants a SASL layer, and the error says so.
  await expect(RtsClient.connect({ systemId, url: broker.url, sasl: { mechanism: 'none' }, connectTimeoutMs: 10_000 })).rejects.toThrow(/refused the connection without credentials/);
});
