// RtsClient with `discovery`: the warm-up probes of announced brokers log in as the client does. They used SASL
// 'none' whatever the client was given, and a broker with accounts answered each probe with "SASL layer not
// enabled" on stderr. Multicast needs a network namespace, so discovery is replaced by a provider driven by hand.
import type { EndpointChange, EndpointProvider } from '../../src/adapters/amqp/endpoint-set';
import type { WarmUpOptions } from '../../src/adapters/amqp/warm-up';

const warmUps: WarmUpOptions[] = [];
jest.mock('../../src/adapters/amqp/warm-up', () => ({
  warmUpOnAdded: (_provider: unknown, options: WarmUpOptions) => {
    warmUps.push(options);
    return { stop: () => undefined, ready: async () => false };
  },
}));
jest.mock('../../src/adapters/amqp/discovery-provider', () => {
  const actual = jest.requireActual('../../src/adapters/amqp/discovery-provider');
  const provider: EndpointProvider = { current: () => [], subscribe: (_l: (c: EndpointChange) => void) => () => undefined };
  return { ...actual, openEndpointProvider: async () => ({ provider, stop: async () => undefined }) };
});
import { RtsClient, jsonCodec } from '../../src/sdk';

describe('RtsClient.connect with discovery', () => {
  beforeEach(() => (warmUps.length = 0));
  const tls = { ca: '-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n' };

  it('gives the warm-up probes the SASL login and TLS settings it was given', async () => {
    const sasl = { mechanism: 'plain' as const, username: 'city-a', password: 's3cret' };
    await expect(RtsClient.connect({ systemId: 'city-a', discovery: 'multicast://default', sasl, tls, codec: jsonCodec, connectTimeoutMs: 50 })).rejects.toThrow();
    expect(warmUps).toEqual([expect.objectContaining({ sasl, tls })]);
  });

  it("gives them the login of the URL's credentials, with a URL list besides discovery", async () => {
    await expect(RtsClient.connect({ systemId: 'city-a', discovery: 'multicast://default', url: 'amqp://city-a:pw@127.0.0.1:1', codec: jsonCodec, connectTimeoutMs: 50 })).rejects.toThrow();
    expect(warmUps).toEqual([expect.objectContaining({ sasl: { mechanism: 'plain', username: 'city-a', password: 'pw' } })]);
  });
});
