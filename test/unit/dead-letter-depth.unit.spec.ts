// The dead letter queue's depth (rts_dead_letters): what a statistics reply of ActiveMQ says, and how the monitor
// shows it: never a figure it could not read now on the connection it has (a broker without the statistics plugin,
// a lost connection, a reading begun before a failover), one warning for a broker that cannot answer, not one per
// reading. The reading itself, against a real broker: test/integration/dead-letter-depth.int.spec.ts.
import { EventEmitter } from 'node:events';
import { DeadLetterDepthMonitor, DepthUnknownError, parseStatisticsReply, type DepthSample } from '../../src/adapters/messaging/dead-letter-depth';
import { deadLetterDepthRecorder } from '../../src/adapters/metrics/hub-metrics';
import { MetricsRegistry } from '../../src/adapters/metrics/registry';

describe('parseStatisticsReply', () => {
  // As ActiveMQ 5.18.3 sends it over AMQP (a JMS MapMessage as an AMQP map), trimmed.
  const reply = (over: Record<string, unknown> = {}) => ({ body: { brokerName: 'rts-test', destinationName: 'queue://rts.dlq', size: 3, enqueueCount: 3, dequeueCount: 0, ...over } });

  it('reads the size of the queue asked about', () => {
    expect(parseStatisticsReply(reply(), 'rts.dlq')).toEqual({ kind: 'size', size: 3 });
    expect(parseStatisticsReply(reply({ size: 0 }), 'rts.dlq')).toEqual({ kind: 'size', size: 0 });
    expect(parseStatisticsReply(reply({ size: 4_000n }), 'rts.dlq')).toEqual({ kind: 'size', size: 4000 });
  });

  it('takes the empty map as the end of the list (a queue the broker does not have yet is that alone)', () => {
    expect(parseStatisticsReply({ body: {} }, 'rts.dlq')).toEqual({ kind: 'end' });
  });

  it('takes nothing else: another queue (a prefix of the name, a topic), no size, a size that is no count, no map', () => {
    expect(parseStatisticsReply(reply({ destinationName: 'queue://rts.dlq.other' }), 'rts.dlq')).toEqual({ kind: 'other' });
    expect(parseStatisticsReply(reply({ destinationName: 'topic://rts.dlq' }), 'rts.dlq')).toEqual({ kind: 'other' });
    expect(parseStatisticsReply(reply({ size: undefined }), 'rts.dlq')).toEqual({ kind: 'other' });
    expect(parseStatisticsReply(reply({ size: -1 }), 'rts.dlq')).toEqual({ kind: 'other' });
    expect(parseStatisticsReply(reply({ size: '3' }), 'rts.dlq')).toEqual({ kind: 'other' });
    expect(parseStatisticsReply(reply({ size: 1.5 }), 'rts.dlq')).toEqual({ kind: 'other' });
    expect(parseStatisticsReply({ body: '' }, 'rts.dlq')).toEqual({ kind: 'other' });
    expect(parseStatisticsReply({ body: null }, 'rts.dlq')).toEqual({ kind: 'other' });
    expect(parseStatisticsReply({ body: [1] }, 'rts.dlq')).toEqual({ kind: 'other' });
  });
});

describe('DeadLetterDepthMonitor', () => {
  class FakeConnection extends EventEmitter {
    connected = false;
    isConnected(): boolean {
      return this.connected;
    }
    up(): void {
      this.connected = true;
      this.emit('connected');
    }
    down(): void {
      this.connected = false;
      this.emit('disconnected');
    }
  }
  type Pending = { resolve(n: number): void; reject(e: Error): void };

  const setup = () => {
    const connection = new FakeConnection();
    const pending: Pending[] = [];
    const lines: Array<{ level: string; msg: string; obj: Record<string, unknown> }> = [];
    const metrics = new MetricsRegistry();
    const record = deadLetterDepthRecorder(metrics, 1_700_000_000_000);
    const samples: DepthSample[] = [];
    const monitor = new DeadLetterDepthMonitor({
      read: () => new Promise<number>((resolve, reject) => pending.push({ resolve, reject })),
      connection,
      everyMs: 3_600_000,
      onSample: (sample) => {
        samples.push(sample);
        record(sample);
      },
      logger: {
        warn: (obj, msg) => lines.push({ level: 'warn', msg, obj: obj as Record<string, unknown> }),
        info: (obj, msg) => lines.push({ level: 'info', msg, obj: obj as Record<string, unknown> }),
      },
      queue: 'rts.dlq',
      now: () => 1_800_000_000_000,
    });
    const sampleLine = () => metrics.render().split('\n').find((l) => l.startsWith('rts_dead_letters '));
    const readings = (result: string) => metrics.counter('rts_dead_letters_readings_total', '', ['result']).get({ result });
    /** Answers the reading asked for last, and waits for the monitor to show it. */
    const answer = async (outcome: number | Error) => {
      const reading = monitor.readNow();
      const next = pending.shift();
      if (!next) throw new Error('no reading was asked for');
      if (typeof outcome === 'number') next.resolve(outcome);
      else next.reject(outcome);
      return reading;
    };
    return { connection, pending, lines, metrics, monitor, samples, sampleLine, readings, answer };
  };

  it('shows the depth read on the current connection, with when it was read', async () => {
    const t = setup();
    t.monitor.start();
    expect(t.sampleLine()).toBeUndefined();
    expect(t.pending).toHaveLength(0); // not connected: nothing asked
    // The hub's start until a first reading: with no sample the alert on its age never fired after a restart.
    expect(t.metrics.render()).toContain('rts_dead_letters_read_timestamp_seconds 1700000000');
    t.connection.up();
    await t.answer(42);
    expect(t.sampleLine()).toBe('rts_dead_letters 42');
    expect(t.metrics.render()).toContain('rts_dead_letters_read_timestamp_seconds 1800000000');
    expect(t.readings('ok')).toBe(1);
    t.monitor.stop();
  });

  it('a broker that does not answer (no statistics plugin): no sample and one warning, however many readings; one info line when it answers', async () => {
    const t = setup();
    t.connection.connected = true;
    t.monitor.start();
    await t.answer(new DepthUnknownError('no_answer', 'the broker did not answer'));
    await t.answer(new DepthUnknownError('no_answer', 'the broker did not answer'));
    await t.answer(new DepthUnknownError('no_answer', 'the broker did not answer'));
    expect(t.sampleLine()).toBeUndefined();
    expect(t.metrics.render()).toContain('# TYPE rts_dead_letters gauge');
    expect(t.readings('no_answer')).toBe(3);
    expect(t.lines).toEqual([expect.objectContaining({ level: 'warn', obj: expect.objectContaining({ reason: 'no_answer', queue: 'rts.dlq' }) })]);
    await t.answer(7);
    expect(t.sampleLine()).toBe('rts_dead_letters 7');
    expect(t.lines.map((l) => l.level)).toEqual(['warn', 'info']);
    t.monitor.stop();
  });

  it('a figure once read is dropped when the reading fails, not kept', async () => {
    const t = setup();
    t.connection.connected = true;
    t.monitor.start();
    await t.answer(5);
    await t.answer(new DepthUnknownError('refused', 'not authorized'));
    expect(t.sampleLine()).toBeUndefined();
    expect(t.metrics.render()).toContain('rts_dead_letters_read_timestamp_seconds 1800000000');
    expect(t.lines).toHaveLength(1);
    t.monitor.stop();
  });

  it('a lost connection drops the figure at once and logs nothing; after the failover the new broker is read', async () => {
    const t = setup();
    t.connection.connected = true;
    t.monitor.start();
    await t.answer(5);
    t.connection.down();
    expect(t.sampleLine()).toBeUndefined();
    t.connection.up();
    expect(t.pending).toHaveLength(1); // read at once on the new connection
    await t.answer(9);
    expect(t.sampleLine()).toBe('rts_dead_letters 9');
    expect(t.lines).toEqual([]);
    t.monitor.stop();
  });

  it('a reading begun before a failover is not shown, even when its answer comes after; the new broker is read after it', async () => {
    const t = setup();
    t.connection.connected = true;
    t.monitor.start();
    const old = t.pending.shift()!;
    t.connection.down();
    t.connection.up();
    // The new connection's reading waits for the old one to end.
    expect(t.pending).toHaveLength(0);
    old.resolve(5);
    const next = t.monitor.readNow();
    await new Promise((r) => setImmediate(r));
    expect(t.sampleLine()).toBeUndefined();
    expect(t.samples.at(-1)).toEqual({ depth: null, reason: 'connection_lost' });
    expect(t.pending).toHaveLength(1);
    t.pending.shift()!.resolve(11);
    await next;
    expect(t.sampleLine()).toBe('rts_dead_letters 11');
    t.monitor.stop();
  });

  it('stops without waiting for a reading under way, which then shows nothing', async () => {
    const t = setup();
    t.connection.connected = true;
    t.monitor.start();
    const reading = t.monitor.readNow();
    t.monitor.stop();
    t.pending.shift()!.resolve(5);
    await reading;
    expect(t.sampleLine()).toBeUndefined();
    expect(t.readings('ok')).toBe(0);
    t.connection.up();
    expect(t.pending).toHaveLength(0);
  });
});
