// SDK parts that need no broker: URL parsing, the dedupe window, the JSON codec.
import { parseDownlink } from '../../src/adapters/messaging/messages';
import { BoundedSeenStore, RtsClient, jsonCodec, resolveEndpoints } from '../../src/sdk';
import { EXAMPLE_DOWNLINK } from '../../src/sdk/asyncapi';

describe('resolveEndpoints', () => {
  it('reads one URL, a list, and ActiveMQ failover syntax; credentials mean SASL PLAIN', () => {
    expect(resolveEndpoints({ url: 'amqp://127.0.0.1:5673' })).toEqual({ endpoints: [{ host: '127.0.0.1', port: 5673 }] });
    expect(resolveEndpoints({ url: 'failover:(amqp://a:1,amqp://b:2)?randomize=false' }).endpoints).toEqual([
      { host: 'a', port: 1 },
      { host: 'b', port: 2 },
    ]);
    expect(resolveEndpoints({ url: ['amqp://a:1', 'amqp://b'] }).endpoints).toEqual([
      { host: 'a', port: 1 },
      { host: 'b', port: 5672 },
    ]);
    expect(resolveEndpoints({ url: 'amqp://city%2Da:s%40cret@h:9' })).toEqual({ endpoints: [{ host: 'h', port: 9 }], sasl: { mechanism: 'plain', username: 'city-a', password: 's@cret' } });
    expect(resolveEndpoints({ endpoints: [{ host: 'x', port: 1 }], url: 'amqp://ignored:2' }).endpoints).toEqual([{ host: 'x', port: 1 }]);
  });

  it('refuses what it cannot use', () => {
    expect(() => resolveEndpoints({})).toThrow(/endpoints.*url/);
    expect(() => resolveEndpoints({ url: 'amqps://h:1' })).toThrow(/only amqp/);
    expect(() => resolveEndpoints({ url: 'not a url' })).toThrow(/not a URL/);
  });

  it('connect() refuses a bad system id before touching the network', async () => {
    await expect(RtsClient.connect({ systemId: 'Bad Id', url: 'amqp://127.0.0.1:1' })).rejects.toThrow(/systemId/);
  });
});

describe('BoundedSeenStore', () => {
  it('remembers the last `capacity` ids and forgets the oldest first', () => {
    const seen = new BoundedSeenStore(3);
    for (const id of ['a', 'b', 'c', 'a', 'd']) seen.add(id);
    expect(['a', 'b', 'c', 'd'].map((id) => seen.has(id))).toEqual([false, true, true, true]);
    expect(seen.size).toBe(3);
    expect(() => new BoundedSeenStore(0)).toThrow(RangeError);
  });
});

describe('JsonCodec', () => {
  const ctx = { from: 'hub', to: 'mianyang', queue: 'rts.downlink.mianyang', parse: parseDownlink };

  it('round-trips an envelope as JSON text and names itself in the properties', () => {
    const envelope = EXAMPLE_DOWNLINK['system.joined'];
    const encoded = jsonCodec.encode(envelope, { from: 'hub', to: 'mianyang', queue: ctx.queue }) as { body: string; applicationProperties: Record<string, unknown> };
    expect(encoded.applicationProperties).toEqual({ contentType: 'application/json', codec: 'json' });
    expect(jsonCodec.decode(encoded.body, encoded.applicationProperties, ctx)).toEqual({ ok: true, envelope });
  });

  it('reports bad bodies with a reason instead of throwing', () => {
    expect(jsonCodec.decode(Buffer.from('{}'), {}, ctx)).toMatchObject({ ok: false, reason: 'bad_body' });
    expect(jsonCodec.decode('{nope', {}, ctx)).toMatchObject({ ok: false, reason: 'bad_json' });
    expect(jsonCodec.decode(JSON.stringify({ ...EXAMPLE_DOWNLINK['system.joined'], payload: {} }), {}, ctx)).toMatchObject({
      ok: false,
      reason: 'bad_schema',
      envelope: { type: 'system.joined', systemId: 'mianyang' },
    });
  });
});
