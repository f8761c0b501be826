// A broker that ends a session (an AMQP `end` frame) ends every link on it, but rhea tells only the session
// (`session_close`), never its links (rhea issue #104): the uplink consumer on that session went quiet with no
// receiver_close, and the hub, which re-attaches only on a link event, would never have consumed again while /health
// said ok. A DurableSender on it waited for credit until each send timed out, for good.
//
// The broker here is a stand-in written with rhea's own server side, for that one frame: we found no way to make
// ActiveMQ 5.18 end a session (a transfer or flow on a handle never attached closes the whole connection with
// amqp:decode-error, a detach of one is ignored). What the hub does after the end is the same with any broker.
import { create_container, type EventContext } from 'rhea';
import type { Server } from 'node:net';
import { AmqpConnection, DurableSender, QueueConsumer, SendError } from '../../src/adapters/amqp';
import { SessionEndedError } from '../../src/adapters/amqp/queue-consumer';
import { UplinkAttachment, type LinkLostReason } from '../../src/adapters/messaging/uplink-attachment';
import { failureOf, freePort, until } from './hub-support';

jest.setTimeout(60_000);

/** A peer that ends the session of the first link attached to `queue`, and serves later ones: one message each. */
const standIn = async (queue: string) => {
  const port = await freePort();
  const server = create_container({ id: 'stand-in-broker' });
  const received: string[] = [];
  let ended = 0;
  const endFirst = (context: EventContext, address: string | undefined) => {
    if (address !== queue || ended > 0) return false;
    ended += 1;
    context.session!.close({ condition: 'amqp:internal-error', description: 'session ended by the stand-in' });
    return true;
  };
  // rhea answers an attach itself, with the terminus set here (it writes the answer after these handlers).
  server.on('sender_open', (context: EventContext) => {
    context.sender!.set_source({ address: context.sender!.source?.address });
    if (endFirst(context, context.sender?.source?.address)) return;
    context.sender!.once('sendable', () => context.sender!.send({ body: 'after the end', durable: true }));
  });
  server.on('receiver_open', (context: EventContext) => {
    context.receiver!.set_target({ address: context.receiver!.target?.address });
    if (endFirst(context, context.receiver?.target?.address)) return;
    context.receiver!.add_credit(10);
  });
  server.on('message', (context: EventContext) => void received.push(String(context.message?.body)));
  server.on('error', () => undefined);
  server.on('disconnected', () => undefined);
  const listener: Server = server.listen({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve) => listener.once('listening', () => resolve()));
  return {
    port,
    received,
    ended: () => ended,
    close: () => new Promise<void>((resolve) => listener.close(() => resolve())),
  };
};

describe('a session the broker ends', () => {
  let connection: AmqpConnection | undefined;
  let peer: Awaited<ReturnType<typeof standIn>> | undefined;
  afterEach(async () => {
    await connection?.close();
    connection = undefined;
    await peer?.close();
    peer = undefined;
  });

  const open = async (queue: string) => {
    peer = await standIn(queue);
    connection = AmqpConnection.open({ endpoints: [{ host: '127.0.0.1', port: peer.port }] });
    await connection.waitConnected(10_000);
    return connection;
  };

  it("ends its QueueConsumer's link: onDetached with SessionEndedError, as for a detach", async () => {
    const c = await open('rts.uplink');
    const detached: Error[] = [];
    const consumer = new QueueConsumer(c, { queue: 'rts.uplink', deadLetterQueue: 'rts.dlq', handler: async () => 'accept', onDetached: (e) => void detached.push(e) });
    // The stand-in answers the attach, then ends the session: start() has resolved by then or rejects with the end.
    await consumer.start(10_000).catch(() => undefined);
    await until('onDetached', () => detached.length > 0, 10_000);
    expect(detached).toHaveLength(1);
    expect(detached[0]).toBeInstanceOf(SessionEndedError);
    expect(detached[0]!.message).toBe('receiver on rts.uplink closed: the broker ended its session (session ended by the broker: amqp:internal-error session ended by the stand-in)');
    expect(consumer.attached()).toBe(false);
    await consumer.stop(0);
  });

  it('is followed by a new uplink consumer on a new session, which consumes; counted as session_ended', async () => {
    const c = await open('rts.uplink');
    const got: string[] = [];
    const lost: LinkLostReason[] = [];
    const attachment = new UplinkAttachment({
      connection: c,
      newConsumer: (hooks) => new QueueConsumer(c, { queue: 'rts.uplink', deadLetterQueue: 'rts.dlq', handler: async (m) => (got.push(m.body), 'accept'), ...hooks }),
      logger: { info: () => undefined, error: () => undefined },
      describe: () => ({}),
      onLinkLost: (reason) => void lost.push(reason),
      retryMs: 0,
      checkEveryMs: 0,
    });
    try {
      void attachment.start();
      await until('consuming again, on a new session', () => got.length > 0, 20_000, 50, () => JSON.stringify({ ended: peer!.ended(), lost }));
      expect(got).toEqual(['after the end']);
      expect(lost).toEqual(['session_ended']);
      expect(attachment.consuming()).toBe(true);
    } finally {
      await attachment.stop(0);
    }
  });

  it('fails the sends of a DurableSender on it (not a wait until each times out); the next send goes on a new session', async () => {
    const c = await open('rts.downlink.mianyang');
    const sender = new DurableSender(c, { sendTimeoutMs: 20_000 });
    try {
      // Sent or still waiting for credit when the end came, it fails at once (to be sent again), with no outcome.
      const first = await failureOf(sender.send('rts.downlink.mianyang', { body: 'one' }));
      expect(first).toBeInstanceOf(SendError);
      expect((first as SendError).reason).not.toBe('timeout');
      expect((first as SendError).retryable).toBe(true);
      await sender.send('rts.downlink.mianyang', { body: 'two' });
      expect(peer!.received).toContain('two');
    } finally {
      await sender.close();
    }
  });
});
