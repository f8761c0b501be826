import { SessionEndedError } from '../../src/adapters/amqp/queue-consumer';
import type { UplinkConsumer } from '../../src/adapters/messaging/amqp-uplink-consumer';
import { UplinkAttachment, UPLINK_MISSED_CHECKS, type LinkLostReason } from '../../src/adapters/messaging/uplink-attachment';

/** A consumer whose link the test attaches, loses (with or without an event), or leaves unanswered. */
class FakeConsumer implements UplinkConsumer {
  linkUp = false;
  stopped = false;
  private pending: { resolve: () => void; reject: (e: Error) => void } | undefined;
  constructor(readonly hooks: { onDetached(error: Error): void; onAttached(): void }) {}
  start(): Promise<void> {
    return new Promise((resolve, reject) => (this.pending = { resolve, reject }));
  }
  async stop(): Promise<void> {
    this.stopped = true;
    this.linkUp = false;
    this.pending?.reject(new Error('stopped before the broker answered its attach'));
    this.pending = undefined;
  }
  attached(): boolean {
    return this.linkUp && !this.stopped;
  }
  answer(): void {
    this.linkUp = true;
    this.pending?.resolve();
    this.pending = undefined;
    this.hooks.onAttached();
  }
  refuse(): void {
    this.pending?.reject(new Error('receiver on rts.uplink closed: amqp:unauthorized-access'));
    this.pending = undefined;
  }
}

/** Lets what is under way run: promise callbacks, and the pause of retryMs 0 (a timer, due before these). */
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 1));
};

const setup = (options: { retryMs?: number } = {}) => {
  const consumers: FakeConsumer[] = [];
  const lost: LinkLostReason[] = [];
  const lines: string[] = [];
  const connection = { connected: true, isConnected: () => connection.connected, once: () => undefined };
  const attachment = new UplinkAttachment({
    connection,
    newConsumer: (hooks) => {
      const consumer = new FakeConsumer(hooks);
      consumers.push(consumer);
      return consumer;
    },
    logger: { info: (_o, msg) => void lines.push(msg), error: (_o, msg) => void lines.push(msg) },
    describe: () => ({}),
    onLinkLost: (reason) => void lost.push(reason),
    retryMs: options.retryMs ?? 0,
    checkEveryMs: 0,
  });
  const last = () => consumers[consumers.length - 1]!;
  const checks = (n: number) => {
    for (let i = 0; i < n; i++) attachment.check();
  };
  return { attachment, consumers, lost, lines, connection, last, checks };
};

describe('UplinkAttachment: the uplink link the hub should have while connected', () => {
  it('replaces a link gone without any event once the checks find it missing, and counts it as missing', async () => {
    const t = setup();
    const started = t.attachment.start();
    await settle();
    t.last().answer();
    expect(await started).toBe(true);
    expect(t.attachment.consuming()).toBe(true);
    t.last().linkUp = false; // rhea removed its session, or lost its attach: no event
    expect(t.attachment.consuming()).toBe(false);
    t.checks(UPLINK_MISSED_CHECKS - 1);
    expect(t.consumers).toHaveLength(1);
    t.checks(1);
    await settle();
    expect(t.consumers[0]!.stopped).toBe(true);
    expect(t.consumers).toHaveLength(2);
    t.last().answer();
    await settle();
    expect(t.attachment.consuming()).toBe(true);
    expect(t.lost).toEqual(['missing']);
    expect(t.lines).toContain('consuming uplink again');
    await t.attachment.stop();
  });

  it('gives up an attach the broker does not answer while connected, and attaches anew', async () => {
    const t = setup();
    const started = t.attachment.start();
    await settle();
    t.checks(UPLINK_MISSED_CHECKS);
    await settle();
    expect(t.consumers[0]!.stopped).toBe(true);
    expect(t.consumers).toHaveLength(2);
    t.last().answer();
    expect(await started).toBe(true);
    expect(t.lost).toEqual(['missing']);
    await t.attachment.stop();
  });

  it('counts nothing while disconnected, nor while it waits to ask again for a link the broker refused', async () => {
    const t = setup({ retryMs: 60_000 });
    void t.attachment.start();
    await settle();
    t.last().refuse();
    await settle();
    t.checks(UPLINK_MISSED_CHECKS * 2); // in the 60 s wait after the refusal
    t.connection.connected = false;
    t.checks(UPLINK_MISSED_CHECKS * 2);
    expect(t.consumers).toHaveLength(1);
    expect(t.lost).toEqual([]);
    await t.attachment.stop();
  });

  it('attaches a new consumer after a detach or a session end, counted by how', async () => {
    const t = setup();
    void t.attachment.start();
    await settle();
    t.last().answer();
    await settle();
    t.last().linkUp = false;
    t.last().hooks.onDetached(new Error('receiver on rts.uplink closed by the broker'));
    await settle();
    t.last().answer();
    await settle();
    t.last().linkUp = false;
    t.last().hooks.onDetached(new SessionEndedError('receiver on rts.uplink closed: the broker ended its session'));
    await settle();
    t.last().answer();
    await settle();
    expect(t.consumers).toHaveLength(3);
    expect(t.lost).toEqual(['detached', 'session_ended']);
    expect(t.attachment.consuming()).toBe(true);
    await t.attachment.stop();
  });
});
