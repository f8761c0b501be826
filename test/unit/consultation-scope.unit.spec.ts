import type { ConsultationView } from '../../src/application/consultation/consultation-projection';
import type { ConsultationQuery } from '../../src/application/consultation/consultation-read-model';
import type { XdsBackend } from '../../src/application/xds-backend';
import { consultationScope, type ConsultationReading } from '../../src/bootstrap/security-module';

/** Consultations as the read models list them: the system's, newest first, by role, status and `before`. */
const readingOf = (views: readonly ConsultationView[], calls: ConsultationQuery[]): ConsultationReading => ({
  get: async (id) => views.find((v) => v.consultationId === id) ?? null,
  list: async (query) => {
    calls.push(query);
    const rows = views
      .filter((v) => v.expertSystemId === query.systemId && (query.status === undefined || v.status === query.status))
      .filter((v) => !query.before || v.requestedAt < query.before.requestedAt || (v.requestedAt === query.before.requestedAt && v.consultationId < query.before.consultationId))
      .sort((a, b) => (a.requestedAt === b.requestedAt ? b.consultationId.localeCompare(a.consultationId) : b.requestedAt.localeCompare(a.requestedAt)));
    return { items: rows.slice(0, query.limit), hasMore: rows.length > query.limit };
  },
});

const view = (n: number, status: ConsultationView['status'], attachments: readonly string[] = []): ConsultationView =>
  ({
    consultationId: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    expertSystemId: 'xian',
    status,
    attachments,
    requestedAt: new Date(Date.UTC(2026, 0, 1) + n * 60_000).toISOString(),
  }) as unknown as ConsultationView;

const xds = { entry: async (uniqueId: string) => ({ uniqueId, patientKey: `key-of-${uniqueId}` }) } as unknown as XdsBackend;

describe("consultationScope: the documents of the cases now with a system's experts", () => {
  it('an open case older than 10,000 closed ones is still in scope, and the closed ones are not read', async () => {
    const views = [view(0, 'accepted', ['1.2.3.4']), view(1, 'reported', ['1.2.3.5']), ...Array.from({ length: 10_001 }, (_, i) => view(10 + i, i % 2 ? 'acknowledged' : 'cancelled', [`9.9.${i}`])), view(20_000, 'offered', ['1.2.3.6'])];
    const calls: ConsultationQuery[] = [];
    const scope = await consultationScope(readingOf(views, calls), xds, 'xian');
    expect([...scope.uniqueIds].sort()).toEqual(['1.2.3.4', '1.2.3.5', '1.2.3.6']);
    expect([...scope.patientKeys].sort()).toEqual(['key-of-1.2.3.4', 'key-of-1.2.3.5', 'key-of-1.2.3.6']);
    expect(calls.every((q) => q.role === 'expert' && q.status !== undefined)).toBe(true);
  });

  it('pages through every open case, however many', async () => {
    const views = Array.from({ length: 1_203 }, (_, i) => view(i, 'accepted', [`1.2.${i}`]));
    const calls: ConsultationQuery[] = [];
    const scope = await consultationScope(readingOf(views, calls), xds, 'xian');
    expect(scope.uniqueIds.size).toBe(1_203);
    expect(calls.filter((q) => q.status === 'accepted')).toHaveLength(3); // 500 + 500 + 203
  });

  it('without consultations (no consultation module): an empty scope', async () => {
    const scope = await consultationScope(undefined, xds, 'xian');
    expect(scope.uniqueIds.size + scope.patientKeys.size).toBe(0);
  });
});
