import { randomUUID } from 'node:crypto';
import { AUDIT_EVENT_TYPE, type AuditEntry } from '../../src/application/audit/audit-chain';
import { AuditTrail, type AuditPage, type AuditSearch } from '../../src/application/audit/audit-trail';
import type { AuditEventsByField } from '../../src/application/ports/audit-events-by-field';
import type { EventStore } from '../../src/application/ports/event-store';

/** What the audit trail reads, counted: the tests of its head reads, its paging and the indexes of audit events by field. */

/** The store, counting the events its readStream hands back (the whole-chain reads) and the most in one read. */
export const countingReads = (store: EventStore) => {
  let read = 0;
  let largest = 0;
  const counted = new Proxy(store, {
    get: (target, name) => {
      const value = Reflect.get(target, name, target) as unknown;
      if (name !== 'readStream') return typeof value === 'function' ? value.bind(target) : value;
      return async (...args: unknown[]) => {
        const result = await (value as (...a: unknown[]) => Promise<{ events: readonly unknown[] }>).apply(target, args);
        read += result.events.length;
        largest = Math.max(largest, result.events.length);
        return result;
      };
    },
  });
  return { counted, read: () => read, largest: () => largest };
};

/**
 * The store as it answers an append whose answer is lost after it committed (the PostgreSQL connection dropped after
 * COMMIT, an adapter's error after the write): the first append is stored, then `afterCommit` runs (another process
 * appending meanwhile) and the append throws; the next `failReads` reads of a stream throw as well (the store still
 * out of reach). Every later call goes through.
 */
export const committedThenLost = (store: EventStore, hooks: { afterCommit?: () => Promise<void>; failReads?: number } = {}): EventStore => {
  let lost = false;
  let failReads = 0;
  return new Proxy(store, {
    get: (target, name) => {
      const value = Reflect.get(target, name, target) as unknown;
      if (name === 'appendToStream') return async (...args: unknown[]) => {
        const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        if (lost) return result;
        lost = true;
        failReads = hooks.failReads ?? 0;
        await hooks.afterCommit?.();
        throw Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
      };
      if (name === 'readStream') return async (...args: unknown[]) => {
        if (failReads > 0) {
          failReads--;
          throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
        }
        return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
      };
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
};

/** The indexes of audit events by field, counting the events they hand back (read and scan). */
export const countingIndex = (index: AuditEventsByField) => {
  let read = 0;
  const counted: AuditEventsByField = {
    read: async (...args) => {
      const events = await index.read(...args);
      read += events.length;
      return events;
    },
    ...(index.scan
      ? {
          scan: async (...args: Parameters<NonNullable<AuditEventsByField['scan']>>) => {
            const events = await index.scan!(...args);
            read += events.length;
            return events;
          },
        }
      : {}),
  };
  return { index: counted, read: () => read };
};

const AT = Date.parse('2026-11-30T08:00:00.000Z');

/** The i-th clinician read of a patient on 2026-11-30, a millisecond apart. */
export const auditEntry = (i: number, patientKey: string): AuditEntry => ({
  at: new Date(AT + i).toISOString(),
  subject: `s-${i % 7}`,
  role: 'clinician',
  systemId: null,
  action: 'observations.read',
  patientKey,
  resource: null,
  ip: '127.0.0.1',
  requestId: `r-${i}`,
  outcome: 'allowed',
  status: 200,
  reason: null,
});

/** A search of 2026-11-30 from midnight on, with no upper bound. */
export const auditSearchOf30November = (over: Partial<AuditSearch> = {}): AuditSearch => ({
  from: new Date('2026-11-30T00:00:00Z'),
  to: null,
  now: new Date('2026-11-30T23:00:00Z'),
  ...over,
});

/** Every page of a patient's (byPatient), a user's (bySubject), a resource's or a request's search, `limit` at a time, as a cursor goes on. */
export const pagesOf = async (trail: AuditTrail, by: 'byPatient' | 'bySubject' | 'byResource' | 'byRequestId', who: string, limit: number, search = auditSearchOf30November()): Promise<AuditPage[]> => {
  const pages = [await trail[by](who, { ...search, limit })];
  while (pages[pages.length - 1]!.truncated) pages.push(await trail[by](who, { ...search, limit, after: pages[pages.length - 1]!.next! }));
  return pages;
};

/**
 * What a search through the store's index or scan answered (`page`) is what walking the chains answers, which reads
 * `walked` events; and page by page, `limit` at a time, the same pages.
 */
const expectSameAsChainWalk = async (
  store: EventStore,
  index: AuditEventsByField,
  page: AuditPage,
  query: Readonly<{ by: 'byPatient' | 'bySubject' | 'byResource' | 'byRequestId'; who: string; walked: number; search: AuditSearch; limit?: number }>,
): Promise<void> => {
  const { by, who, search } = query;
  const { counted: walking, read: readByWalk } = countingReads(store);
  expect(page).toEqual(await new AuditTrail({ store: walking })[by](who, search));
  expect(readByWalk()).toBe(query.walked);

  const walked = await pagesOf(new AuditTrail({ store }), by, who, query.limit ?? 64, search);
  expect(walked.length).toBeGreaterThan(1);
  expect(await pagesOf(new AuditTrail({ store, eventsByField: index }), by, who, query.limit ?? 64, search)).toEqual(walked);
};

/**
 * A patient's or a user's search through the store's `index` answers with `own` events, reads those and nothing of
 * the chains, where the chain walk reads `walked` events for the same answer; and page by page, `limit` at a time as
 * a cursor goes on, gives the same pages as the chain walk.
 */
export const expectSearchThroughIndex = async (
  store: EventStore,
  index: AuditEventsByField,
  query: Readonly<{ by: 'byPatient' | 'bySubject'; who: string; own: number; walked: number; search?: AuditSearch; limit?: number }>,
): Promise<void> => {
  const { by, who, search = auditSearchOf30November() } = query;
  const { counted, read: readFromChains } = countingReads(store);
  const { index: countedIndex, read: readThroughIndex } = countingIndex(index);
  const indexed = new AuditTrail({ store: counted, eventsByField: countedIndex });
  const page = await indexed[by](who, search);
  expect(page.items).toHaveLength(query.own);
  expect(readThroughIndex()).toBe(query.own);
  expect(readFromChains()).toBe(0); // the index's own reads go to the store directly, not through `counted`
  await expectSameAsChainWalk(store, index, page, { ...query, search });
};

/**
 * 4,000 audit events of 2026-11-30 over all eight chains, of 20 users, `subject` one of them (one event in 20, 200
 * in all); of 37 patients, and every thirtieth event of none (such an event's chain follows its subject).
 */
export const recordUsersDay = async (trail: AuditTrail, subject: string): Promise<void> => {
  await Promise.all(
    Array.from({ length: 4_000 }, (_, i) =>
      trail.record({ ...auditEntry(i, `k${i % 37}`), subject: i % 20 === 0 ? subject : `u${i % 20}`, ...(i % 30 === 0 ? { patientKey: null } : {}) }),
    ),
  );
};

/**
 * A resource's or a request's search through the store's scan answers with `own` events and hands back those only,
 * where the chain walk reads (and parses) `walked`; of the chains themselves only each one's head is read (one event
 * a chain, for where its scan ends); page by page, `limit` at a time, the same pages as the chain walk.
 */
export const expectSearchThroughScan = async (
  store: EventStore,
  index: AuditEventsByField,
  query: Readonly<{ by: 'byResource' | 'byRequestId'; who: string; own: number; walked: number; search?: AuditSearch; limit?: number }>,
): Promise<void> => {
  const { by, who, search = auditSearchOf30November() } = query;
  const { counted, read: readFromChains, largest } = countingReads(store);
  const { index: countedIndex, read: handedBack } = countingIndex(index);
  const page = await new AuditTrail({ store: counted, eventsByField: countedIndex })[by](who, search);
  expect(page.items).toHaveLength(query.own);
  expect(handedBack()).toBe(query.own);
  expect(largest()).toBeLessThanOrEqual(1);
  expect(readFromChains()).toBeLessThanOrEqual(8);
  await expectSameAsChainWalk(store, index, page, { ...query, search });
};

/**
 * 4,000 audit events of 2026-11-30 over all eight chains (37 patients, every thirtieth of none), one in 20 about
 * `resource` (200), the others about 19 other documents or nothing; each its own request id r-<i>, and r-7 twice more.
 */
export const recordResourcesDay = async (trail: AuditTrail, resource: string): Promise<void> => {
  await Promise.all(
    Array.from({ length: 4_000 }, (_, i) =>
      trail.record({
        ...auditEntry(i, `k${i % 37}`),
        resource: i % 20 === 0 ? resource : i % 2 === 0 ? `1.2.208.${i % 19}` : null,
        ...(i % 30 === 0 ? { patientKey: null } : {}),
        ...(i === 1000 || i === 3001 ? { requestId: 'r-7' } : {}),
      }),
    ),
  );
};

/**
 * A store's firstChainFrom (and the trail's chainDays over it): nothing while it holds no audit event; then the
 * chains at or after a name, whatever order they were written in, with other streams of other types around them, and
 * the days holding chains, several chains of one day being one day.
 */
export const expectChainDays = async (store: EventStore, index: AuditEventsByField): Promise<void> => {
  const trail = new AuditTrail({ store, eventsByField: index });
  expect(await index.firstChainFrom!('audit-')).toBeNull();
  expect(await trail.chainDays()).toEqual([]);
  const event = (type: string) => [{ id: randomUUID(), type, data: { patientKey: 'p1', subject: 's1' } }];
  for (const stream of ['audit-2026-11-30-5', 'audit-2025-10-31-2', 'audit-2026-12-07-0', 'audit-2026-12-07-6', 'audit-2024-02-29-1']) await store.appendToStream(stream, event(AUDIT_EVENT_TYPE));
  for (const stream of ['aaa-1', 'document-1', 'zzz-1', 'audit-days-1']) await store.appendToStream(stream, event('Other'));
  expect(await index.firstChainFrom!('audit-')).toBe('audit-2024-02-29-1');
  expect(await index.firstChainFrom!('audit-2026-12-01')).toBe('audit-2026-12-07-0');
  expect(await index.firstChainFrom!('audit-2026-12-08')).toBeNull();
  expect(await trail.chainDays()).toEqual(['2024-02-29', '2025-10-31', '2026-11-30', '2026-12-07']);
};
