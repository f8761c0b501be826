import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { AUDIT_PARTITIONS, auditPartition, type AuditEntry } from '../../src/application/audit/audit-chain';
import { AuditTrail } from '../../src/application/audit/audit-trail';
import type { EventStore } from '../../src/application/ports/event-store';

/**
 * The audit trail as several hub processes write it: each process keeps its own idea of each chain's head, and
 * they meet on the same streams (PostgreSQL, or SQLite files shared by processes). A conflict means another
 * process linked first; the entry must then be linked after it, not dropped.
 */
const entry = (i: number, patientKey: string, at: string): AuditEntry => ({
  at,
  subject: `s-${i}`,
  role: 'patient',
  systemId: null,
  action: 'observations.write',
  patientKey,
  resource: null,
  ip: '127.0.0.1',
  requestId: `r-${i}`,
  outcome: 'allowed',
  status: 201,
  reason: null,
});

describe('AuditTrail shared by processes', () => {
  it('links every entry of two processes writing the same chains at the same time, and drops none', async () => {
    const shared = new InMemoryEventStore();
    // Each process reaches the store with its own latency (a commit takes time), so one can read a head that the
    // other is about to move.
    const latency = () => new Promise((r) => setTimeout(r, Math.random() * 3));
    const viaProcess = (): EventStore =>
      new Proxy(shared, {
        get: (target, name) => {
          const value = Reflect.get(target, name, target) as unknown;
          if (name !== 'appendToStream' && name !== 'readStream') return typeof value === 'function' ? value.bind(target) : value;
          return async (...args: unknown[]) => {
            await latency();
            return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          };
        },
      });
    let dropped = 0;
    const trails = [0, 1].map(() => new AuditTrail({ store: viaProcess(), onDropped: (n) => (dropped += n) }));
    const store = shared;
    // Patients of one partition, so both processes write the same chain all the time.
    const keys = Array.from({ length: 200 }, (_, i) => `p${i}`).filter((k) => auditPartition({ patientKey: k, subject: '' }) === 3);
    const at = '2026-11-30T08:00:00.000Z';
    const recorded: Promise<void>[] = [];
    for (let tick = 0; tick < 30; tick++) {
      for (const [t, trail] of trails.entries()) for (let j = 0; j < 5; j++) recorded.push(trail.record(entry(tick * 100 + t * 10 + j, keys[(tick + j) % keys.length]!, at)));
      await new Promise((r) => setTimeout(r, 1));
    }
    const outcomes = await Promise.allSettled(recorded);
    expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([]);
    expect(dropped).toBe(0);
    const verified = await trails[0]!.verify(['2026-11-30']);
    expect(verified).toMatchObject({ ok: true, events: 300, breaks: [] });
    expect(verified.chains).toBe(1);
    expect(AUDIT_PARTITIONS).toBe(8);
  });

  it('drops a batch the store keeps refusing, after its attempts, and says how many entries were lost', async () => {
    const store = new InMemoryEventStore();
    let calls = 0;
    const failing = new Proxy(store, {
      get: (target, name) => {
        if (name === 'appendToStream') return async () => { calls++; throw new Error('disk full'); };
        const value = Reflect.get(target, name, target) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    let dropped = 0;
    const trail = new AuditTrail({ store: failing, attempts: 3, onDropped: (n) => (dropped += n) });
    const at = '2026-11-30T08:00:00.000Z';
    const both = await Promise.allSettled([trail.record(entry(1, 'p1', at)), trail.record(entry(2, 'p1', at))]);
    expect(both.map((o) => o.status)).toEqual(['rejected', 'rejected']);
    expect(calls).toBe(3);
    expect(dropped).toBe(2);
  });
});
