import type { Database } from 'better-sqlite3';
import type { DirectoryReadModel, ExpertPage, ExpertQuery } from '../../application/directory/directory-read-model';
import type { RecordedEvent } from '../../application/ports/event-store';
import type { CheckpointStore } from '../../application/ports/downlink-outbox';
import {
  DIRECTORY_EVENT_TYPES,
  evolveExpertView,
  evolveSystemRow,
  searchKey,
  type ExpertView,
  type SystemRow,
  type SystemView,
} from '../../application/projections/directory-projection';
import { isConnectedSystemEvent, type ConnectedSystemEvent, type SystemStatus } from '../../domain/directory/connected-system';
import { changesExpert, isExpertEvent, type ExpertEvent, type ExpertProfile } from '../../domain/directory/expert';
import type { SqliteWriter } from './sqlite-registry';

/**
 * The directory projection in the same SQLite file as the events (the pattern of SqliteRegistry): rows and
 * checkpoint change in one transaction taken through the store's writer (`runExclusive`).
 *
 * Also a durable `CheckpointStore` (table `subscription_checkpoints`, untouched by `reset()`), for the downlink
 * publisher: `new SqliteDirectory(sqliteEventStore)` serves as both.
 *
 * Both write `relaxed` (no fsync of their own; see ExclusiveDurability): a process crash loses none of it (WAL),
 * and a power loss can only take back the newest projection and checkpoint commits together, which costs a
 * replay: the projection is rebuilt from the events, and the publisher re-sends from the older checkpoint with
 * the same message ids, as after a crash between a send and its checkpoint. Measured on the hub's uplink path:
 * these commits were three fsyncs for every one of the appends they follow.
 *
 * Search: specialties and languages go to a tag table (kind 's' or 'l', searchKey of the value), the city's
 * searchKey to an indexed column, so each filter is an index lookup; pages are keyset pages by expert_id.
 */
const PROJECTION = 'directory';
const RELAXED = { durability: 'relaxed' } as const;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS directory_experts (
  expert_id TEXT PRIMARY KEY,
  home_system_id TEXT NOT NULL,
  local_expert_id TEXT NOT NULL,
  profile TEXT NOT NULL,
  city_key TEXT NOT NULL,
  status TEXT NOT NULL,
  revision INTEGER NOT NULL,
  registered_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  retired_at TEXT,
  registered_position INTEGER NOT NULL,
  retired_position INTEGER
);
CREATE INDEX IF NOT EXISTS directory_experts_by_city ON directory_experts (city_key, expert_id);
CREATE INDEX IF NOT EXISTS directory_experts_by_home ON directory_experts (home_system_id, status);
CREATE TABLE IF NOT EXISTS directory_expert_tags (
  kind TEXT NOT NULL,
  tag_key TEXT NOT NULL,
  expert_id TEXT NOT NULL,
  PRIMARY KEY (kind, tag_key, expert_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS directory_expert_tags_by_expert ON directory_expert_tags (expert_id);
CREATE TABLE IF NOT EXISTS directory_systems (
  system_id TEXT PRIMARY KEY,
  row TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS projection_checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS subscription_checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
`;

type ExpertRow = {
  expert_id: string;
  home_system_id: string;
  local_expert_id: string;
  profile: string;
  city_key: string;
  status: 'active' | 'retired';
  revision: bigint;
  registered_at: string;
  updated_at: string;
  retired_at: string | null;
  registered_position: bigint;
  retired_position: bigint | null;
};

const toView = (r: ExpertRow): ExpertView => ({
  expertId: r.expert_id,
  homeSystemId: r.home_system_id,
  localExpertId: r.local_expert_id,
  profile: JSON.parse(r.profile) as ExpertProfile,
  status: r.status,
  revision: Number(r.revision),
  registeredAt: r.registered_at,
  updatedAt: r.updated_at,
  retiredAt: r.retired_at,
  registeredPosition: BigInt(r.registered_position),
  retiredPosition: r.retired_position === null ? null : BigInt(r.retired_position),
});

const toRow = (v: ExpertView): ExpertRow => ({
  expert_id: v.expertId,
  home_system_id: v.homeSystemId,
  local_expert_id: v.localExpertId,
  profile: JSON.stringify(v.profile),
  city_key: searchKey(v.profile.location.city),
  status: v.status,
  revision: BigInt(v.revision),
  registered_at: v.registeredAt,
  updated_at: v.updatedAt,
  retired_at: v.retiredAt,
  registered_position: v.registeredPosition,
  retired_position: v.retiredPosition,
});

/** System rows are small and read whole: stored as JSON, positions as decimal strings. */
type StoredSystem = Omit<SystemRow, 'joinedPosition'> & { joinedPosition: string | null; status: SystemStatus };
const systemToJson = (r: SystemRow): string => JSON.stringify({ ...r, joinedPosition: r.joinedPosition === null ? null : r.joinedPosition.toString() } satisfies StoredSystem);
const systemFromJson = (json: string): SystemRow => {
  const s = JSON.parse(json) as StoredSystem;
  return { ...s, joinedPosition: s.joinedPosition === null ? null : BigInt(s.joinedPosition) };
};

const EXPERT_COLUMNS = 'e.expert_id, e.home_system_id, e.local_expert_id, e.profile, e.city_key, e.status, e.revision, e.registered_at, e.updated_at, e.retired_at, e.registered_position, e.retired_position';

export class SqliteDirectory implements DirectoryReadModel, CheckpointStore {
  readonly eventTypes = DIRECTORY_EVENT_TYPES;
  private readonly db: Database;
  private readonly statements;
  /** The projection's write statements, prepared once (they run inside the writer's transactions). */
  private readonly writes;

  constructor(private readonly writer: SqliteWriter) {
    this.db = writer.database;
    this.db.exec(SCHEMA);
    this.statements = {
      getExpert: this.db.prepare(`SELECT ${EXPERT_COLUMNS} FROM directory_experts e WHERE e.expert_id = ?`).safeIntegers(true),
      asOf: this.db
        .prepare(
          `SELECT ${EXPERT_COLUMNS} FROM directory_experts e WHERE e.registered_position <= ? AND (e.retired_position IS NULL OR e.retired_position > ?) ORDER BY e.expert_id`,
        )
        .safeIntegers(true),
      retiredAsOf: this.db
        .prepare(`SELECT ${EXPERT_COLUMNS} FROM directory_experts e WHERE e.retired_position IS NOT NULL AND e.retired_position <= ? ORDER BY e.expert_id`)
        .safeIntegers(true),
      getSystem: this.db.prepare('SELECT row FROM directory_systems WHERE system_id = ?'),
      listSystems: this.db.prepare('SELECT row FROM directory_systems ORDER BY system_id'),
      activeCount: this.db.prepare(`SELECT COUNT(*) FROM directory_experts WHERE home_system_id = ? AND status = 'active'`).pluck(),
      activeCounts: this.db.prepare(`SELECT home_system_id AS id, COUNT(*) AS n FROM directory_experts WHERE status = 'active' GROUP BY home_system_id`),
      checkpoint: this.db.prepare('SELECT position FROM projection_checkpoints WHERE name = ?').pluck().safeIntegers(true),
      subscription: this.db.prepare('SELECT position FROM subscription_checkpoints WHERE name = ?').pluck().safeIntegers(true),
    };
    this.writes = {
      upsertExpert: this.db.prepare(
        `INSERT INTO directory_experts VALUES (@expert_id, @home_system_id, @local_expert_id, @profile, @city_key, @status, @revision,
           @registered_at, @updated_at, @retired_at, @registered_position, @retired_position)
         ON CONFLICT (expert_id) DO UPDATE SET profile = excluded.profile, city_key = excluded.city_key, status = excluded.status,
           revision = excluded.revision, updated_at = excluded.updated_at, retired_at = excluded.retired_at, retired_position = excluded.retired_position`,
      ),
      deleteTags: this.db.prepare('DELETE FROM directory_expert_tags WHERE expert_id = ?'),
      insertTag: this.db.prepare('INSERT OR IGNORE INTO directory_expert_tags (kind, tag_key, expert_id) VALUES (?, ?, ?)'),
      selectSystem: this.db.prepare('SELECT row FROM directory_systems WHERE system_id = ?').pluck(),
      upsertSystem: this.db.prepare('INSERT INTO directory_systems (system_id, row) VALUES (?, ?) ON CONFLICT (system_id) DO UPDATE SET row = excluded.row'),
      setCheckpoint: this.db.prepare('INSERT INTO projection_checkpoints (name, position) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET position = excluded.position'),
      setSubscription: this.db.prepare('INSERT INTO subscription_checkpoints (name, position) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET position = excluded.position'),
    };
  }

  async checkpoint(): Promise<bigint> {
    const position = this.statements.checkpoint.get(PROJECTION) as bigint | undefined;
    return position === undefined ? 0n : BigInt(position);
  }

  async apply(events: readonly RecordedEvent[], checkpoint: bigint): Promise<void> {
    const selectExpert = this.statements.getExpert;
    const { upsertExpert, deleteTags, insertTag, selectSystem, upsertSystem, setCheckpoint } = this.writes;
    await this.writer.runExclusive(() => {
      for (const e of events) {
        const at = { globalPosition: e.globalPosition, streamVersion: e.streamVersion };
        if (isExpertEvent(e)) {
          const event = { type: e.type, data: e.data } as ExpertEvent;
          const current = selectExpert.get(event.data.expertId) as ExpertRow | undefined;
          const next = evolveExpertView(current ? toView(current) : null, event, at);
          if (!next) continue;
          upsertExpert.run(toRow(next));
          if (event.type !== 'ExpertRetired' && changesExpert(event)) {
            deleteTags.run(next.expertId);
            for (const s of next.profile.specialties) insertTag.run('s', searchKey(s), next.expertId);
            for (const l of next.profile.languages) insertTag.run('l', searchKey(l), next.expertId);
          }
        } else if (isConnectedSystemEvent(e)) {
          const event = { type: e.type, data: e.data } as ConnectedSystemEvent;
          const current = selectSystem.get(event.data.systemId) as string | undefined;
          const next = evolveSystemRow(current === undefined ? null : systemFromJson(current), event, at);
          if (next) upsertSystem.run(next.systemId, systemToJson(next));
        }
      }
      setCheckpoint.run(PROJECTION, checkpoint);
    }, RELAXED);
  }

  async reset(): Promise<void> {
    await this.writer.runExclusive((db) => {
      db.prepare('DELETE FROM directory_experts').run();
      db.prepare('DELETE FROM directory_expert_tags').run();
      db.prepare('DELETE FROM directory_systems').run();
      db.prepare('DELETE FROM projection_checkpoints WHERE name = ?').run(PROJECTION);
    });
  }

  async getExpert(expertId: string): Promise<ExpertView | null> {
    const row = this.statements.getExpert.get(expertId) as ExpertRow | undefined;
    return row ? toView(row) : null;
  }

  async findExperts(query: ExpertQuery): Promise<ExpertPage> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (!query.includeRetired) where.push(`e.status = 'active'`);
    if (query.after !== undefined) (where.push('e.expert_id > ?'), params.push(query.after));
    if (query.homeSystemId !== undefined) (where.push('e.home_system_id = ?'), params.push(query.homeSystemId));
    if (query.city !== undefined) (where.push('e.city_key = ?'), params.push(searchKey(query.city)));
    if (query.specialty !== undefined) {
      where.push(`EXISTS (SELECT 1 FROM directory_expert_tags t WHERE t.kind = 's' AND t.tag_key = ? AND t.expert_id = e.expert_id)`);
      params.push(searchKey(query.specialty));
    }
    if (query.language !== undefined) {
      where.push(`EXISTS (SELECT 1 FROM directory_expert_tags t WHERE t.kind = 'l' AND t.tag_key = ? AND t.expert_id = e.expert_id)`);
      params.push(searchKey(query.language));
    }
    const sql = `SELECT ${EXPERT_COLUMNS} FROM directory_experts e ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY e.expert_id LIMIT ?`;
    const rows = this.db.prepare(sql).safeIntegers(true).all(...params, query.limit + 1) as ExpertRow[];
    return { items: rows.slice(0, query.limit).map(toView), hasMore: rows.length > query.limit };
  }

  async expertsAsOf(position: bigint): Promise<readonly ExpertView[]> {
    return (this.statements.asOf.all(position, position) as ExpertRow[]).map(toView);
  }

  async retiredAsOf(position: bigint): Promise<readonly ExpertView[]> {
    return (this.statements.retiredAsOf.all(position) as ExpertRow[]).map(toView);
  }

  async getSystem(systemId: string): Promise<SystemView | null> {
    const json = this.statements.getSystem.get(systemId) as { row: string } | undefined;
    if (!json) return null;
    return { ...systemFromJson(json.row), activeExperts: Number(this.statements.activeCount.get(systemId)) };
  }

  async listSystemRows(): Promise<readonly SystemRow[]> {
    return (this.statements.listSystems.all() as { row: string }[]).map((r) => systemFromJson(r.row));
  }

  async listSystems(): Promise<readonly SystemView[]> {
    const counts = new Map((this.statements.activeCounts.all() as { id: string; n: number }[]).map((c) => [c.id, Number(c.n)]));
    return (this.statements.listSystems.all() as { row: string }[]).map((r) => {
      const row = systemFromJson(r.row);
      return { ...row, activeExperts: counts.get(row.systemId) ?? 0 };
    });
  }

  // CheckpointStore

  async get(name: string): Promise<bigint> {
    const position = this.statements.subscription.get(name) as bigint | undefined;
    return position === undefined ? 0n : BigInt(position);
  }

  async set(name: string, position: bigint): Promise<void> {
    await this.writer.runExclusive(() => {
      this.writes.setSubscription.run(name, position);
    }, RELAXED);
  }
}
