import type { AuditEntry } from '../../src/application/audit/audit-chain';
import type { AuditPage, AuditSearch, AuditTrail } from '../../src/application/audit/audit-trail';
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

/** The indexes of audit events by field, counting the events they hand back. */
export const countingIndex = (index: AuditEventsByField) => {
  let read = 0;
  const counted: AuditEventsByField = {
    read: async (...args) => {
      const events = await index.read(...args);
      read += events.length;
      return events;
    },
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

/** Every page of a patient's search of 2026-11-30, `limit` at a time, as a cursor goes on. */
export const pagesOfPatient = async (trail: AuditTrail, patientKey: string, limit: number): Promise<AuditPage[]> => {
  const pages = [await trail.byPatient(patientKey, auditSearchOf30November({ limit }))];
  while (pages[pages.length - 1]!.truncated) pages.push(await trail.byPatient(patientKey, auditSearchOf30November({ limit, after: pages[pages.length - 1]!.next! })));
  return pages;
};
