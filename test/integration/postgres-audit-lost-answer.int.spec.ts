import { randomBytes } from 'node:crypto';
import { PostgresEventStore } from '../../src/adapters/event-store/postgres/postgres-event-store';
import { auditStreamOf } from '../../src/application/audit/audit-chain';
import { AuditTrail } from '../../src/application/audit/audit-trail';
import { auditEntry, committedThenLost } from '../support/audit-reads';
import { dropSchema } from '../support/postgres-schema';

/**
 * Two hub processes on one PostgreSQL store, one of which loses the answer of an audit append that committed (the
 * connection dropped after COMMIT) while the other appends to the same chain before it reads the head again. Before,
 * the retry linked the batch again after the other's event and stored it a second time: 8 events where 7 were
 * recorded, each access of the batch twice in a chain that still verified.
 */
const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

describe('the audit trail on PostgreSQL, an append whose answer was lost after the commit', () => {
  const schema = `rts_audit_lost_${process.pid}_${randomBytes(4).toString('hex')}`;
  const stores: PostgresEventStore[] = [];
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await dropSchema(connectionString, schema);
  });

  it('is stored once, also when another process appended to the chain before the head was read again', async () => {
    const [one, two] = [await PostgresEventStore.open({ connectionString, schema }), await PostgresEventStore.open({ connectionString, schema })];
    stores.push(one!, two!);
    const other = new AuditTrail({ store: two! });
    await Promise.all([0, 1].map((i) => other.record(auditEntry(i, 'p1'))));
    let dropped = 0;
    const trail = new AuditTrail({ store: committedThenLost(one!, { afterCommit: () => other.record(auditEntry(9, 'p1')) }), onDropped: (n) => (dropped += n) });
    await Promise.all([2, 3, 4].map((i) => trail.record(auditEntry(i, 'p1'))));
    await trail.record(auditEntry(5, 'p1'));
    const { events } = await two!.readStream(auditStreamOf(auditEntry(0, 'p1')));
    expect(events.map((e) => e.data['requestId'])).toEqual(['r-0', 'r-1', 'r-2', 'r-3', 'r-4', 'r-9', 'r-5']);
    expect(dropped).toBe(0);
    expect(await other.verify(['2026-11-30'])).toMatchObject({ ok: true, events: 7 });
  });
});
