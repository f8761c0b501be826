import { CONSULTATION_ID_PATTERN } from '../../domain/consultation/consultation';
import { isLegacyConsultationId } from '../../domain/consultation/legacy-id';
import type { EventStore } from '../ports/event-store';

/** A consultation's end: nothing more happens to it (no offer, no report resend, no message). */
const ENDED = new Set(['ReportAcknowledged', 'ConsultationUnassigned', 'ConsultationCancelled']);
const TYPES = new Set(['ConsultationRequested', ...ENDED]);

/**
 * Consultations recorded with an id that is no UUID (by the builds before ids were UUIDs; legacy-id.ts) and not
 * ended: `open` can be served (HTTP and messages take their ids), `unservable` cannot (the id may hold a CPR number:
 * it is refused everywhere, as before; its deadline timers still run out). Counted from the store's consultation
 * events (read by type: an index on SQLite and PostgreSQL), for one warning at start. No id is returned: one of
 * the unservable ones may be a CPR number.
 */
export const countLegacyConsultations = async (store: EventStore, pageSize = 1000): Promise<{ open: number; unservable: number }> => {
  const open = new Map<string, boolean>(); // legacy id -> servable
  for (let after = 0n; ; ) {
    const events = await store.readAll({ after, maxCount: pageSize, types: TYPES });
    for (const event of events) {
      const id = event.data['consultationId'];
      if (typeof id !== 'string' || CONSULTATION_ID_PATTERN.test(id)) continue;
      if (event.type === 'ConsultationRequested') open.set(id, isLegacyConsultationId(id));
      else if (ENDED.has(event.type)) open.delete(id);
    }
    if (events.length < pageSize) break;
    after = events[events.length - 1]!.globalPosition;
  }
  const servable = [...open.values()].filter(Boolean).length;
  return { open: servable, unservable: open.size - servable };
};
