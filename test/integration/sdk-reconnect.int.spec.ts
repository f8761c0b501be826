// The SDK across a broker restart (stop, then start on the same data dir and port): every send resolves or
// rejects clearly, nothing the broker accepted is lost, and the downlink subscription comes back by itself.
import { AmqpConnection, DurableSender } from '../../src/adapters/amqp';
import { parseUplink, serializeDownlink, type DownlinkEnvelope, type ExpertProfile } from '../../src/adapters/messaging/messages';
import { RtsClient, RtsSendError } from '../../src/sdk';
import { startBroker, type TestBroker } from '../support/activemq';
import { readQueue } from '../support/sdk-queues';
import { startStallingProxy, type StallingProxy } from '../support/stalling-proxy';

jest.setTimeout(120000);

const profile = (name: string): ExpertProfile => ({
  name,
  title: 'Attending',
  specialties: ['nephrology'],
  location: { city: 'Mianyang', hospital: 'Central' },
  languages: ['zh'],
  availability: 'available',
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
function until(predicate: () => boolean, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = () => (predicate() ? resolve() : Date.now() > deadline ? reject(new Error('condition not met in time')) : setTimeout(tick, 20));
    tick();
  });
}

describe('RtsClient across a broker restart', () => {
  let broker: TestBroker;
  let client: RtsClient | undefined;

  afterAll(async () => {
    await client?.close().catch(() => undefined);
    await broker?.destroy();
  });

  it('resends what the restart cut off; every send settles; every accepted message is on the queue afterwards', async () => {
    broker = await startBroker();
    client = await RtsClient.connect({ systemId: 'restart-city', url: broker.url, sendTimeoutMs: 90000, reconnect: { initialDelayMs: 100, maxDelayMs: 500 } });
    const events: string[] = [];
    client.on('connected', () => events.push('connected'));
    client.on('disconnected', () => events.push('disconnected'));

    const received: string[] = [];
    await client.subscribe({ onSystemJoined: (m) => void received.push(m.payload.systemId) });

    const total = 400;
    const inFlight = 16;
    const accepted = new Set<string>();
    const failures: unknown[] = [];
    let next = 0;
    const worker = async () => {
      while (next < total) {
        const i = next++;
        try {
          accepted.add(await client!.registerExpert(`e-${i}`, profile(`Expert ${i}`), { messageId: `row-${i}` }));
        } catch (error) {
          failures.push(error);
        }
        await sleep(5);
      }
    };
    const sending = Promise.all(Array.from({ length: inFlight }, worker));

    await until(() => accepted.size >= 60);
    await broker.stop();
    await sleep(1000);
    // startAgain, not startBroker({ dataDir }): the new broker owns the data dir, so afterAll's destroy() deletes it.
    broker = await broker.startAgain();
    await sending;

    // Every call settled; failures, if any, are clear RtsSendErrors (none expected within the timeout).
    expect(accepted.size + failures.length).toBe(total);
    for (const f of failures) expect(f).toBeInstanceOf(RtsSendError);
    expect(failures).toEqual([]);
    expect(events).toContain('disconnected');
    expect(events[events.length - 1]).toBe('connected');

    // Nothing accepted is lost (KahaDB kept what was accepted before the stop). Resends may make duplicates, with
    // the same envelope id: the hub ignores those.
    const onQueue = await readQueue(broker, client.uplinkQueue, { count: total * 2, idleMs: 3000, timeoutMs: 60000 });
    const ids = new Set(
      onQueue.map((m) => {
        const r = parseUplink(m.body as string);
        if (!r.ok) throw new Error(r.detail);
        return r.message.id;
      }),
    );
    for (const id of accepted) expect(ids.has(id)).toBe(true);
    expect(ids.size).toBe(total);

    // The downlink subscription re-attached by itself: a message published after the restart is handled.
    const hub = AmqpConnection.open({ endpoints: [{ host: broker.host, port: broker.amqpPort }] });
    await hub.waitConnected();
    const sender = new DurableSender(hub);
    const envelope: DownlinkEnvelope = {
      id: '5b0c3c4e-9a51-4f7e-8f2a-0d6f1b1e7a10',
      type: 'system.joined',
      version: 1,
      systemId: 'restart-city',
      correlationId: 'after-restart',
      time: '2026-11-23T10:00:00.000Z',
      payload: { systemId: 'other', name: 'Other', area: 'A' },
    };
    await sender.send(client.downlinkQueue, { body: serializeDownlink(envelope) });
    await until(() => received.includes('other'));
    await sender.close();
    await hub.close();
  });

  it('rejects with RtsSendError (timeout) when no broker comes back in time', async () => {
    const c = await RtsClient.connect({ systemId: 'lonely-city', url: broker.url, sendTimeoutMs: 3000, reconnect: { maxDelayMs: 200 } });
    await broker.stop();
    const error = await c.registerExpert('e-1', profile('Nobody')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RtsSendError);
    expect((error as RtsSendError).reason).toBe('timeout');
    await c.close(2000);
    broker = await broker.startAgain();
  });
});

describe('RtsClient: sendTimeoutMs bounds a call, resends across reconnects included', () => {
  let broker: TestBroker;
  let proxy: StallingProxy | undefined;
  let client: RtsClient | undefined;

  afterAll(async () => {
    await client?.close(2000).catch(() => undefined);
    await proxy?.close();
    await broker?.destroy();
  });

  it('a send lost to a disconnect late in its window rejects with the timeout when the window is spent, not a window later', async () => {
    const sendTimeoutMs = 4000;
    broker = await startBroker();
    proxy = await startStallingProxy({ host: broker.host, port: broker.amqpPort });
    client = await RtsClient.connect({ systemId: 'late-loss-city', url: `amqp://127.0.0.1:${proxy.port}`, sendTimeoutMs, reconnect: { initialDelayMs: 50, maxDelayMs: 200 } });
    // The uplink link is attached (and has credit) before the broker stops reading: the send below goes out.
    await client.registerExpert('e-0', profile('Warm Up'));

    // The transfer goes out but never reaches the broker: no outcome while the window runs.
    proxy.hold();
    const order: string[] = [];
    const outcome = client.registerExpert('e-1', profile('Late Loss')).then(
      (id) => id,
      (error: unknown) => error,
    );
    void outcome.then(() => order.push('call settled'));
    await sleep(sendTimeoutMs * 0.75);
    // Late in the window the connection is lost (and the broker stays unreachable): the send is resent after the
    // reconnect, but only a quarter of the window is left for it.
    proxy.refuse();
    await sleep(sendTimeoutMs * 0.75);
    // Half a window after the call's bound the broker is reachable again: a call still open then gets the message
    // through, well past sendTimeoutMs.
    order.push('broker back');
    proxy.resume();
    const result = await outcome;

    expect(result).toBeInstanceOf(RtsSendError);
    expect((result as RtsSendError).reason).toBe('timeout');
    expect((result as RtsSendError).message).toMatch(/^uplink message [0-9a-f-]{36} not accepted by the broker: timeout after \d+ attempt\(s\)/);
    expect(order).toEqual(['call settled', 'broker back']);
  });
});
