// SDK parts that need no broker: URL parsing, the dedupe window, the JSON codec.
import { parseDownlink } from '../../src/adapters/messaging/messages';
import { BoundedSeenStore, OncePerId, RtsClient, jsonCodec, resolveEndpoints, type SeenStore } from '../../src/sdk';
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
    expect(resolveEndpoints({ url: 'failover:(amqps://city:pw@a,amqps://b:5680)' })).toEqual({
      endpoints: [
        { host: 'a', port: 5671, tls: true },
        { host: 'b', port: 5680, tls: true },
      ],
      sasl: { mechanism: 'plain', username: 'city', password: 'pw' },
    });
  });

  it('refuses what it cannot use', () => {
    expect(() => resolveEndpoints({})).toThrow(/endpoints.*url/);
    expect(() => resolveEndpoints({ url: 'http://h:1' })).toThrow(/only amqp:\/\/ and amqps:\/\//);
    expect(() => resolveEndpoints({ url: 'not a url' })).toThrow(/not a URL/);
    // A URL that does not parse is named without what comes before its @ (a password, perhaps).
    expect(() => resolveEndpoints({ url: 'amqps://city:s3cret@h:99999' })).toThrow('RtsClient: not a URL: …@h:99999');
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

describe('OncePerId', () => {
  // A seen store on a database: every call answers after a turn of the event loop.
  const slowStore = (): SeenStore & { ids: Set<string> } => {
    const ids = new Set<string>();
    const later = <T>(value: () => T) => new Promise<T>((resolve) => setImmediate(() => resolve(value())));
    return { ids, has: (id) => later(() => ids.has(id)), add: (id) => later(() => void ids.add(id)) };
  };

  it('runs the work once for two copies that arrive together (the second waits for the first)', async () => {
    const once = new OncePerId(slowStore());
    const calls: string[] = [];
    const work = async () => {
      calls.push('dup');
      await new Promise((resolve) => setTimeout(resolve, 5));
    };
    // Same tick, as when rhea hands two deliveries over from one socket read.
    const results = await Promise.all([once.run('dup', work), once.run('dup', work), once.run('other', async () => void calls.push('other'))]);
    expect(results).toEqual([true, false, true]);
    expect(calls.sort()).toEqual(['dup', 'other']);
    expect(once.inProgress).toBe(0);
    expect(await once.run('dup', work)).toBe(false);
    expect(calls).toHaveLength(2);
  });

  it('leaves the id unseen when the work throws, so the copy behind it (or a redelivery) runs it', async () => {
    const store = slowStore();
    const once = new OncePerId(store);
    let attempt = 0;
    const work = async () => {
      attempt += 1;
      if (attempt === 1) throw new Error('database busy');
    };
    const [first, second] = await Promise.allSettled([once.run('x', work), once.run('x', work)]);
    expect(first.status).toBe('rejected');
    expect(second).toEqual({ status: 'fulfilled', value: true });
    expect(attempt).toBe(2);
    expect(store.ids.has('x')).toBe(true);
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
