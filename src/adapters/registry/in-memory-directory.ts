import type { DirectoryReadModel, ExpertPage, ExpertQuery } from '../../application/directory/directory-read-model';
import type { RecordedEvent } from '../../application/ports/event-store';
import {
  DIRECTORY_EVENT_TYPES,
  evolveExpertView,
  evolveSystemRow,
  expertActiveAt,
  searchKey,
  type ExpertView,
  type SystemRow,
  type SystemView,
} from '../../application/projections/directory-projection';
import { isConnectedSystemEvent, type ConnectedSystemEvent } from '../../domain/directory/connected-system';
import { isExpertEvent, type ExpertEvent } from '../../domain/directory/expert';

/**
 * The directory projection held in memory: for unit tests and for stores without a SQL side (it is rebuilt from
 * the events at start). `apply` builds the new maps aside and swaps them in, so a failure leaves the old state.
 */
export class InMemoryDirectory implements DirectoryReadModel {
  readonly eventTypes = DIRECTORY_EVENT_TYPES;
  private experts = new Map<string, ExpertView>();
  private systems = new Map<string, SystemRow>();
  private position = 0n;

  async checkpoint(): Promise<bigint> {
    return this.position;
  }

  async apply(events: readonly RecordedEvent[], checkpoint: bigint): Promise<void> {
    const experts = new Map(this.experts);
    const systems = new Map(this.systems);
    for (const e of events) {
      const at = { globalPosition: e.globalPosition, streamVersion: e.streamVersion };
      if (isExpertEvent(e)) {
        const event = { type: e.type, data: e.data } as ExpertEvent;
        const row = evolveExpertView(experts.get(event.data.expertId) ?? null, event, at);
        if (row) experts.set(row.expertId, row);
      } else if (isConnectedSystemEvent(e)) {
        const event = { type: e.type, data: e.data } as ConnectedSystemEvent;
        const row = evolveSystemRow(systems.get(event.data.systemId) ?? null, event, at);
        if (row) systems.set(row.systemId, row);
      }
    }
    this.experts = experts;
    this.systems = systems;
    this.position = checkpoint;
  }

  async reset(): Promise<void> {
    this.experts = new Map();
    this.systems = new Map();
    this.position = 0n;
  }

  async getExpert(expertId: string): Promise<ExpertView | null> {
    return this.experts.get(expertId) ?? null;
  }

  async findExperts(query: ExpertQuery): Promise<ExpertPage> {
    const specialty = query.specialty === undefined ? undefined : searchKey(query.specialty);
    const city = query.city === undefined ? undefined : searchKey(query.city);
    const language = query.language === undefined ? undefined : searchKey(query.language);
    const matches = this.sorted().filter(
      (e) =>
        (query.includeRetired || e.status === 'active') &&
        (query.after === undefined || e.expertId > query.after) &&
        (query.homeSystemId === undefined || e.homeSystemId === query.homeSystemId) &&
        (specialty === undefined || e.profile.specialties.some((s) => searchKey(s) === specialty)) &&
        (city === undefined || searchKey(e.profile.location.city) === city) &&
        (language === undefined || e.profile.languages.some((l) => searchKey(l) === language)),
    );
    return { items: matches.slice(0, query.limit), hasMore: matches.length > query.limit };
  }

  async expertsAsOf(position: bigint): Promise<readonly ExpertView[]> {
    return this.sorted().filter((e) => expertActiveAt(e, position));
  }

  async retiredAsOf(position: bigint): Promise<readonly ExpertView[]> {
    return this.sorted().filter((e) => e.retiredPosition !== null && e.retiredPosition <= position);
  }

  async getSystem(systemId: string): Promise<SystemView | null> {
    const row = this.systems.get(systemId);
    return row ? this.withCounts(row) : null;
  }

  async listSystems(): Promise<readonly SystemView[]> {
    return (await this.listSystemRows()).map((r) => this.withCounts(r));
  }

  async listSystemRows(): Promise<readonly SystemRow[]> {
    return [...this.systems.values()].sort((a, b) => compare(a.systemId, b.systemId));
  }

  private sorted(): ExpertView[] {
    return [...this.experts.values()].sort((a, b) => compare(a.expertId, b.expertId));
  }

  private withCounts(row: SystemRow): SystemView {
    let activeExperts = 0;
    for (const e of this.experts.values()) if (e.homeSystemId === row.systemId && e.status === 'active') activeExperts++;
    return { ...row, activeExperts };
  }
}

/** Code-unit order, the order SQLite's BINARY collation gives, so both adapters page alike. */
const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
