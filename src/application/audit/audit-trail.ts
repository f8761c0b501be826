import { REPEATED_FAILURE_LOG_EVERY_MS } from '../repeated-failure-log';
import { uuidV5 } from '../ids';
import { CLOCK_SKEW_SECONDS } from '../../domain/monitoring/tele-observation';
import { ValidationError } from '../../domain/shared/errors';
import { ExpectedVersionConflictError, IdempotencyViolationError, type EventStore, type RecordedEvent } from '../ports/event-store';
import type { AuditEventsByField, AuditIndexedField, AuditScannedField } from '../ports/audit-events-by-field';
import {
  AUDIT_EVENT_TYPE,
  AUDIT_PARTITIONS,
  auditPartition,
  auditStreamName,
  auditStreamOf,
  chain,
  genesisHash,
  ChainWalk,
  type AuditEntry,
  type ChainBreak,
  type ChainedAuditEntry,
} from './audit-chain';

export type AuditLogger = { error(obj: object, msg: string): void; warn(obj: object, msg: string): void };

export type AuditTrailOptions = Readonly<{
  store: EventStore;
  /**
   * The store's indexes of audit events by patient and by subject, where it has them (SQLite, PostgreSQL): byPatient
   * and bySubject read the patient's or the user's own events through them. Without them, byPatient reads the
   * patient's partition chain of each day whole, bySubject every chain of each day. Their scan (no index) hands back
   * only the events of a resource or a request as the store reads the chains (byResource, byRequestId).
   */
  eventsByField?: AuditEventsByField;
  logger?: AuditLogger;
  /** Milliseconds now, for the failure log's throttle (default Date.now). */
  now?: () => number;
  /** Called with the number of audit events that could not be stored (after the retries, or for a full queue). */
  onDropped?: (count: number) => void;
  /** Called when the trail turns unwritable (true) and writable again (false): see `unwritable`. */
  onUnwritable?: (unwritable: boolean) => void;
  /** Entries queued beyond this are dropped (and counted) rather than growing the heap without bound. */
  maxQueued?: number;
  /** Append attempts per batch that fail for another reason than a conflict, before its entries are dropped. */
  attempts?: number;
  /** Version conflicts (another process linked first) a batch may meet before it is dropped. */
  maxConflicts?: number;
}>;

type Pending = { entry: AuditEntry; onceId?: string; resolve: () => void; reject: (error: unknown) => void };

/**
 * `record`'s options. `onceId`: the entry stands for something that must be recorded once, however often it is
 * recorded (a message redelivered, or sent again after a restart, whose entry may be stored already): a UUID the
 * caller derives from what the entry records (never random). It becomes the stored event's id (an entry's event id is
 * otherwise derived from its chain hash, which differs each time it is linked), and an entry whose id the store holds
 * already (in its chain, or in another day's) is not stored again: `record` resolves, as for one stored now. Such an
 * entry is appended on its own, not in a batch: a repeat in a batch fails the whole append (IdempotencyViolationError)
 * and the others' entries with it. A store that looks event ids up only near a stream's tail (EventStoreDB) may store
 * a repeat all the same.
 */
export type RecordOptions = Readonly<{ onceId?: string }>;
/** What every event a search wants has: its data's `field` is `value` (what the store's index is asked for). */
type IndexedBy = Readonly<{ field: AuditIndexedField; value: string }>;
/** The same for a field the store has no index of, which it compares while reading the chain (AuditEventsByField.scan). */
type ScannedBy = Readonly<{ scan: AuditScannedField; value: string }>;
type Head = { version: bigint; hash: string };
/**
 * A chain this hub process found changed behind it (verify): the version of the event it wrote (or read) last there,
 * the hash that event had, the hash the store holds at that version now (null: none), and the chain's head in the
 * store now (null: no events). Stream names and hashes only.
 */
export type ChangedBehindHub = Readonly<{ streamName: string; version: number; wrote: string; stored: string | null; head: string | null }>;
/** An append attempt whose answer may have been lost after it committed: where its first event would stand, its hash, the head it left. */
type Unsure = { version: bigint; hash: string; head: Head };

/**
 * The widest interval one query or verification may name, in days of 24 h. Its bounds fall on at most one UTC day
 * more (MAX_AUDIT_DAYS_WALKED): a query from noon to noon 31 days later walks 32 days' chains.
 */
export const MAX_AUDIT_DAYS = 31;
/** The most UTC days (each AUDIT_PARTITIONS chains) one query or verification walks. */
export const MAX_AUDIT_DAYS_WALKED = MAX_AUDIT_DAYS + 1;
/** The most entries one answer of a query carries (and its default): the rest comes page by page. */
export const MAX_AUDIT_RESULTS = 1000;

/**
 * Events a chain is read by at a time, by queries and verification, with a turn of the event loop between reads:
 * SQLite's reads are synchronous, and a whole busy day's chains read at once held every other request for seconds
 * (and their events in memory).
 */
const CHAIN_PAGE = 1_000;
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Where an answer of a query stopped: the UTC day of its last entry, and for each of that day's chains (by
 * partition) the stream version of the last entry taken from it, -1 for none. Opaque to callers (the HTTP edge
 * wraps it in a cursor).
 */
export type AuditPosition = Readonly<{ day: string; after: readonly bigint[] }>;

export type AuditSearch = Readonly<{
  /** Inclusive, by instant (the entries' `at`, milliseconds). */
  from: Date;
  /** Exclusive; null: no upper bound (up to the hub's `now`, and whatever is recorded while paging). */
  to: Date | null;
  /** The hub's clock: the last day walked when `to` is null. */
  now: Date;
  /** 1..MAX_AUDIT_RESULTS, default MAX_AUDIT_RESULTS. */
  limit?: number;
  /** Go on after this position (an earlier answer's `next`, for the same query). */
  after?: AuditPosition;
  /** Where the caller's from and to came from, for an error's path: the URL's query (default) or the body. */
  source?: 'query' | 'body';
}>;

export type AuditPage = Readonly<{
  /** The UTC days whose chains the query covers. */
  days: readonly string[];
  items: readonly ChainedAuditEntry[];
  /** More entries match behind the last one: ask again with `after: next`. */
  truncated: boolean;
  next: AuditPosition | null;
}>;

/**
 * The audit trail: records access events in hash-chained day/partition streams of the event store, and answers
 * the operator's queries and verification by walking those chains.
 *
 * Recording is asynchronous and batched: `record()` queues the entry and resolves once it is committed (durably:
 * the store's own fsync, shared by everything appended together by its group commit). Entries arriving in the same
 * tick go to their streams in one append per stream. Within one process appends to one stream are serialized, so
 * the chain is linear; between hub processes an expected-version conflict re-reads the chain's new tail and links
 * the batch again, after a short random pause (conflicts do not count as failed attempts). An append that failed
 * otherwise may have committed all the same (its answer lost): the batch is looked for where it would stand before
 * it is linked again, so that it is stored once.
 *
 * Guarantee (see README): a reader's answer is not delayed by its audit append; a write's answer waits for it.
 * A batch that fails `attempts` times is dropped: logged (counts and stream, no personal data) and counted by
 * `onDropped`, and the promises of its entries reject.
 *
 * `unwritable` is the cheap flag the HTTP edge refuses reads of patient data by (fail closed): set by the first
 * append attempt that fails for another reason than a conflict (or an entry dropped for a full queue), cleared by
 * the next append that commits. Reads served before it was set, whose events then failed, are the gap it leaves.
 */
export class AuditTrail {
  private readonly heads = new Map<string, Head>();
  /** Chains found rewritten behind this process (checkedHead): the first change found, where and what it wrote there. */
  private readonly rewritten = new Map<string, Head>();
  /**
   * Per chain, the last change behind this process that was logged (changedBehind): the same change found again (at
   * the next anchor, at the next append's conflict, which read on from the same head) is not logged again.
   */
  private readonly said = new Map<string, string>();
  private readonly queues = new Map<string, Pending[]>();
  private readonly running = new Map<string, Promise<void>>();
  private queued = 0;
  private scheduled = false;
  private closed = false;
  /** The failure log's throttle: while appends keep failing, one line per 10 s with what was not logged since. */
  private failure: { since: number; loggedAt: number; batchesNotLogged: number; droppedNotLogged: number; dropped: number } | null = null;
  private failing = false;

  constructor(private readonly options: AuditTrailOptions) {}

  /**
   * True while the trail cannot be written: its last append attempt failed (or an entry was dropped) and none has
   * committed since. A field read, no I/O: the read path checks it on every request.
   */
  get unwritable(): boolean {
    return this.failing;
  }

  private setUnwritable(value: boolean): void {
    if (this.failing === value) return;
    this.failing = value;
    this.options.onUnwritable?.(value);
  }

  record(entry: AuditEntry, options: RecordOptions = {}): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the audit trail is closed'));
    if (this.queued >= (this.options.maxQueued ?? 100_000)) {
      this.options.onDropped?.(1);
      this.setUnwritable(true);
      this.options.logger?.error({ dropped: 1 }, 'audit queue full; audit event dropped');
      return Promise.reject(new Error('the audit queue is full'));
    }
    return new Promise<void>((resolve, reject) => {
      const stream = auditStreamOf(entry);
      const q = this.queues.get(stream) ?? [];
      q.push({ entry, ...(options.onceId !== undefined ? { onceId: options.onceId } : {}), resolve, reject });
      this.queues.set(stream, q);
      this.queued++;
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Resolves when everything recorded so far has been appended (or dropped). */
  async drain(): Promise<void> {
    while (this.queued > 0 || this.running.size > 0) {
      this.flush();
      await Promise.allSettled([...this.running.values()]);
      if (this.queued > 0 && this.running.size === 0) await new Promise((r) => setImmediate(r));
    }
  }

  async close(): Promise<void> {
    await this.drain();
    this.closed = true;
  }

  private flush(): void {
    this.scheduled = false;
    for (const stream of [...this.queues.keys()]) {
      if (this.running.has(stream)) continue; // its runner takes the rest when it is done
      const run = this.appendAll(stream).finally(() => this.running.delete(stream));
      this.running.set(stream, run);
    }
  }

  private async appendAll(stream: string): Promise<void> {
    for (;;) {
      const batch = this.queues.get(stream);
      if (!batch || batch.length === 0) {
        this.queues.delete(stream);
        return;
      }
      this.queues.delete(stream);
      this.queued -= batch.length;
      // The entries to be stored once, each on its own (RecordOptions); the rest together, as one append.
      const plain = batch.filter((p) => p.onceId === undefined);
      const appends: Pending[][] = [...(plain.length > 0 ? [plain] : []), ...batch.filter((p) => p.onceId !== undefined).map((p) => [p])];
      for (const group of appends) {
        try {
          await this.appendBatch(
            stream,
            group.map((p) => p.entry),
            group[0]!.onceId,
          );
          for (const p of group) p.resolve();
          this.appendWorked();
        } catch (error) {
          this.options.onDropped?.(group.length);
          this.setUnwritable(true);
          this.appendFailed(stream, group.length, error);
          for (const p of group) p.reject(error);
        }
      }
    }
  }

  /**
   * During a storage outage every refused request is audited and its audit append fails too: one line per failed
   * batch was thousands of error lines (2,156 in a 16 s PostgreSQL outage) around the one line that mattered. As the
   * other background loops do (RepeatedFailureLog): one line per 10 s with the counts not logged, one when it works.
   */
  private appendFailed(stream: string, dropped: number, error: unknown): void {
    const now = (this.options.now ?? Date.now)();
    const f = this.failure;
    if (f !== null && now - f.loggedAt < REPEATED_FAILURE_LOG_EVERY_MS) {
      f.batchesNotLogged++;
      f.droppedNotLogged += dropped;
      f.dropped += dropped;
      return;
    }
    const notLogged = f !== null && f.batchesNotLogged > 0 ? { notLoggedSince: f.batchesNotLogged, droppedNotLogged: f.droppedNotLogged } : {};
    this.options.logger?.error({ stream, dropped, errType: (error as Error)?.name, errCode: (error as { code?: unknown })?.code, ...notLogged }, 'audit events could not be stored');
    this.failure = { since: f?.since ?? now, loggedAt: now, batchesNotLogged: 0, droppedNotLogged: 0, dropped: (f?.dropped ?? 0) + dropped };
  }

  private appendWorked(): void {
    const f = this.failure;
    if (f === null) return;
    this.failure = null;
    this.options.logger?.warn({ failedForMs: (this.options.now ?? Date.now)() - f.since, droppedInAll: f.dropped, ...(f.batchesNotLogged > 0 ? { notLoggedSince: f.batchesNotLogged } : {}) }, 'audit events are stored again');
  }

  /** `entries` linked to the chain and appended; with `onceId` one entry, stored under that id unless it is already. */
  private async appendBatch(stream: string, entries: readonly AuditEntry[], onceId?: string): Promise<void> {
    const attempts = this.options.attempts ?? 5;
    const maxConflicts = this.options.maxConflicts ?? 100;
    let failures = 0;
    let conflicts = 0;
    // The attempts that failed for another reason than a conflict: their answer may have been lost after they
    // committed (a connection dropped after COMMIT). Where each one's first event would stand, with its hash, and the
    // head it would have left.
    const unsure: Unsure[] = [];
    // The head the first of them left, once any read of the chain during the attempts showed it stored (every read
    // is looked at: a read that showed it, followed by reads failing until the attempts ran out, dropped the batch
    // though it was stored and this process had seen it).
    let shown: Head | null = null;
    const look = (events: readonly RecordedEvent[]): void => {
      shown ??= storedIn(events, unsure);
    };
    // The batch found stored: the head kept is the later of the chain's and the batch's own.
    const found = (head: Head | undefined, stored: Head): void => {
      this.heads.set(stream, head && head.version >= stored.version ? head : stored);
      this.setUnwritable(false);
    };
    for (;;) {
      let head: Head;
      try {
        head = this.heads.get(stream) ?? (await this.readHead(stream, null, look));
        // An event's id follows from its chain hash, so the batch linked again after another head (another process
        // appended after it before the head was read again, or the head read is the batch's own last event) is other
        // events to the store, stored a second time: each access recorded twice. Look for it first.
        const stored = shown ?? (await this.storedBefore(stream, unsure, look));
        if (stored) {
          found(head, stored);
          return;
        }
      } catch (error) {
        if (shown) {
          found(this.heads.get(stream), shown);
          return;
        }
        // The store cannot be read (down still): a failed attempt, as an append's.
        this.setUnwritable(true);
        if (++failures >= attempts) throw error;
        await new Promise((r) => setTimeout(r, 20 * failures));
        continue;
      }
      const linked = chain(head.hash, entries);
      try {
        const result = await this.options.store.appendToStream(
          stream,
          linked.map((e) => ({ id: onceId ?? uuidV5(`audit/${stream}/${e.hash}`), type: AUDIT_EVENT_TYPE, data: e, metadata: { correlationId: e.requestId } })),
          { expectedVersion: head.version < 0n ? 'no_stream' : head.version },
        );
        if (onceId !== undefined && result.idempotent) {
          // Stored before under that id, in this chain (linked then, with its own time and hash): nothing was written
          // now. The head this process holds may be behind; the next append's conflict reads on from it. Kept, not
          // forgotten: read again from the tail, a chain rewritten behind it went unchecked (checkedHead), and the
          // next anchor vouched for the rewrite (a redelivered message was enough).
          this.heads.set(stream, head);
          this.setUnwritable(false);
          return;
        }
        this.heads.set(stream, { version: result.nextExpectedVersion, hash: linked[linked.length - 1]!.hash });
        this.setUnwritable(false);
        return;
      } catch (error) {
        // Stored before under that id in another chain (another day's: a redelivery after midnight): nothing written.
        if (onceId !== undefined && error instanceof IdempotencyViolationError) {
          this.setUnwritable(false);
          return;
        }
        // Fail closed at once, not after the retries: reads served meanwhile would go unaudited if they all fail.
        if (!(error instanceof ExpectedVersionConflictError)) {
          this.setUnwritable(true);
          const at = head.version + 1n;
          if (!unsure.some((u) => u.version === at && u.hash === linked[0]!.hash)) {
            unsure.push({ version: at, hash: linked[0]!.hash, head: { version: head.version + BigInt(linked.length), hash: linked[linked.length - 1]!.hash } });
          }
        }
        // Another hub process appended to this chain: read its new tail and link again.
        // The store out of reach still: the head kept, to read on from (checked) once it answers. Forgotten, the next
        // attempt read the chain's tail unchecked, and a rewrite behind this process went unsaid (an append and a read
        // failing together: a dropped connection, or someone who can cut it for a moment).
        const fresh = await this.readHead(stream, head.version >= 0n ? head : null, look).catch(() => null);
        this.heads.set(stream, fresh ?? head);
        // An answer lost after the commit: the read shows the batch where it was appended (this attempt's, or an
        // earlier one's).
        if (shown) {
          found(fresh ?? head, shown);
          return;
        }
        if (fresh && fresh.hash === linked[linked.length - 1]!.hash) {
          this.setUnwritable(false);
          return;
        }
        if (error instanceof ExpectedVersionConflictError) {
          // Another process linked first: that is progress, not failure. Link after it; a pause of a few random
          // milliseconds keeps two processes from meeting on the same chain again and again.
          if (++conflicts > maxConflicts) throw error;
          await new Promise((r) => setTimeout(r, Math.random() * Math.min(conflicts, 10)));
          continue;
        }
        if (++failures >= attempts) throw error;
        await new Promise((r) => setTimeout(r, 20 * failures));
      }
    }
  }

  /**
   * The head an attempt of `unsure` left, if the chain holds it (storedIn): its first event read where the append put
   * it. Null when none is there. What each read shows goes to `look` as well.
   */
  private async storedBefore(stream: string, unsure: readonly Unsure[], look: (events: readonly RecordedEvent[]) => void): Promise<Head | null> {
    for (const attempt of unsure) {
      const { events } = await this.options.store.readStream(stream, { fromVersion: attempt.version, maxCount: 1 });
      look(events);
      const stored = storedIn(events, [attempt]);
      if (stored) return stored;
    }
    return null;
  }

  /**
   * The chain's last version and hash; from `known` on when given (reads only what is new), else its last event only.
   * `look` is shown every event read (an append's attempts look there for a batch whose answer was lost).
   * Reading a chain from its genesis cost seconds of a busy day's chains, with the event loop blocked (SQLite reads are
   * synchronous): at every anchor, at shutdown and at the first audited request of each chain after a start.
   */
  private async readHead(stream: string, known: Head | null, look?: (events: readonly RecordedEvent[]) => void): Promise<Head> {
    if (!known || known.version < 0n) {
      const { events: first, currentVersion: last } = await this.options.store.readStream(stream, { maxCount: 1 });
      look?.(first);
      if (last === null) return { version: -1n, hash: genesisHash(stream) };
      const tail = last === first[0]?.streamVersion ? first : (await this.options.store.readStream(stream, { fromVersion: last, maxCount: 1 })).events;
      look?.(tail);
      const event = tail[tail.length - 1];
      // Appended to meanwhile past `last`, or cut back under it: read on from what the first read saw.
      if (event) return { version: event.streamVersion, hash: String(event.data['hash']) };
    }
    // From this process's own head on, that event included: the events before it are never rewritten, so it must still
    // hold the hash this process wrote or last read (checkedHead).
    const from = known && known.version >= 0n ? known.version : 0n;
    const read = await this.options.store.readStream(stream, { fromVersion: from });
    look?.(read.events);
    const { currentVersion } = read;
    const events = known && known.version >= 0n ? this.checkedHead(stream, known, read.events) : read.events;
    const last = events[events.length - 1];
    if (last) return { version: last.streamVersion, hash: String(last.data['hash']) };
    if (known && currentVersion !== null && currentVersion >= known.version) return known;
    if (known && known.version >= 0n) {
      // The chain is shorter than this process last wrote it: events were deleted behind the store's back.
      // Say so (anchored verification will show where), and go on from the chain as it is now; this process's anchors
      // of the chain carry the hash it wrote, as for a rewrite (checkedHead): the cut chain's head vouched for the cut.
      this.changedBehind(stream, known, `shorter:${currentVersion ?? -1n}`, () =>
        this.options.logger?.error({ stream, wroteUpTo: String(known.version), nowAt: String(currentVersion ?? -1n) }, 'audit chain shorter than this hub wrote it: possible tampering'),
      );
      return this.readHead(stream, null, look);
    }
    return { version: -1n, hash: genesisHash(stream) };
  }

  /**
   * `events` (a chain read from `known`'s version on) without that first event, once it is found to hold `known`'s
   * hash. An event that holds another was rewritten behind the store's back (its chain relinked from there on, the
   * work of someone with write access to the store): said as possible tampering, and remembered, so that this process's
   * anchors of the chain carry the hash it wrote and not the rewritten head, and POST /audit/verify with them reports
   * the chain (anchor_missing). Before, a chain rewritten and then added to (one more event) was read on from its new
   * tail without a word, and the next anchor vouched for the rewrite. The same for a chain that goes on past `known`'s
   * version without an event there (the store's appends leave no gap: it was deleted, and one put after it), which was
   * taken whole, unchecked. No events: the chain ends before `known` (the caller's "shorter").
   */
  private checkedHead(stream: string, known: Head, events: readonly RecordedEvent[]): readonly RecordedEvent[] {
    const own = events[0];
    if (own === undefined) return events;
    const there = own.streamVersion === known.version;
    if (!there || String(own.data['hash']) !== known.hash) {
      this.changedBehind(stream, known, there ? `holds:${String(own.data['hash'])}` : `gone:${own.streamVersion}`, () =>
        this.options.logger?.error({ stream, version: String(known.version) }, 'audit chain changed behind this hub: an event it wrote or read is gone or no longer holds its hash: possible tampering'),
      );
    }
    return there ? events.slice(1) : events;
  }

  /**
   * A chain found changed behind this process where its head `known` stood (`found`: what is there now): remembered
   * (the first change: the anchors carry the hash written there), and logged once. Each anchor reads the chain from the
   * same head until this process appends again, and that append's conflict reads from it once more: the one rewrite
   * was logged at every anchor and again at the conflict. A change at another head, or another found at the same head,
   * is another rewrite, logged again. A chain cut back under the head and then appended to by other hub processes
   * (shorter by less, then another event where the head stood) is their appends to the cut chain, not another change:
   * a process that does not append there itself reads from the same head at each anchor, and said the one cut once per
   * event the others appended up to that version, and again past it. A deeper cut, or another hash where the head
   * stood after that, is said again.
   */
  private changedBehind(stream: string, known: Head, found: string, log: () => void): void {
    if (!this.rewritten.has(stream)) this.rewritten.set(stream, known);
    const at = `${known.version}/${known.hash}/`;
    const before = this.said.get(stream);
    this.said.set(stream, `${at}${found}`);
    if (before === `${at}${found}`) return;
    if (before?.startsWith(`${at}shorter:`)) {
      const cutTo = BigInt(before.slice(`${at}shorter:`.length));
      if (found.startsWith('shorter:') ? BigInt(found.slice('shorter:'.length)) > cutTo : found.startsWith('holds:')) return;
    }
    log();
  }

  /**
   * One page of the audit events of one patient (pseudonymous key) in [from, to): the patient's chain of each
   * UTC day, in chain (recording) order. See `page` for the order, the limit and the position.
   *
   * With the store's index (`eventsByField`) only the patient's own events are read: the chain holds one eighth of
   * every patient's audited requests of its day, and reading it whole made an export cost the hub's whole audited
   * traffic times its age. The answer is the same either way: the same events, taken in the same version order.
   */
  async byPatient(patientKey: string, search: AuditSearch): Promise<AuditPage> {
    return this.page([auditPartition({ patientKey, subject: '' })], (e) => e.patientKey === patientKey, search, { field: 'patientKey', value: patientKey });
  }

  /**
   * The UTC days ('YYYY-MM-DD', in order) that hold audit chains, found in the store's index one seek per such day,
   * the days between skipped; null when the store cannot tell (no index: EventStoreDB, in memory). A clock set ahead
   * or back puts entries on days outside the store's other times, and walking every day up to them made an export
   * after a clock at +800 years take 6 s, the event loop blocked.
   */
  async chainDays(): Promise<readonly string[] | null> {
    if (this.options.eventsByField?.chainDays) return this.options.eventsByField.chainDays();
    const seek = this.options.eventsByField?.firstChainFrom?.bind(this.options.eventsByField);
    if (!seek) return null;
    const days: string[] = [];
    const dayOf = (stream: string | null): string | null => (stream === null ? null : (/^audit-(\d{4}-\d{2}-\d{2})-\d+$/.exec(stream)?.[1] ?? null));
    for (let day = dayOf(await seek('audit-')); day !== null; day = dayOf(await seek(`audit-${nextUtcDay(day)}`))) days.push(day);
    return days;
  }

  /**
   * One page of the audit events of one user (token subject) in [from, to), oldest first (see `page`).
   *
   * A user's events are in every chain of a day (the chain follows the patient), so all eight are merged. With the
   * store's index (`eventsByField`) only the user's own events of each are read: without it a week's search of one
   * user on a busy hub read every audited request of that week. The answer is the same either way.
   */
  async bySubject(subject: string, search: AuditSearch): Promise<AuditPage> {
    return this.page(ALL_PARTITIONS, (e) => e.subject === subject, search, { field: 'subject', value: subject });
  }

  /**
   * One page of the audit events about one resource (a document's uniqueId or a consultation's id, as the trail
   * records them in `resource`) in [from, to), oldest first (see `page`): who read or acted on it. A resource's
   * events are in every chain of a day (the chain follows the patient or the caller), so all eight are merged, as
   * for a user. No index of resources (every audited request would pay for it, for an investigator's occasional
   * question): every chain of each day is read, in the store where it can compare the field itself (`scan`), else
   * here. The answer is the same either way.
   */
  async byResource(resource: string, search: AuditSearch): Promise<AuditPage> {
    return this.page(ALL_PARTITIONS, (e) => e.resource === resource, search, { scan: 'resource', value: resource });
  }

  /**
   * One page of the audit events of one request (its request id, X-Request-Id) in [from, to), oldest first (see
   * `page`): what that request did. Mostly one event; all eight chains of each day are merged, as for a user, and
   * read as for a resource (no index).
   */
  async byRequestId(requestId: string, search: AuditSearch): Promise<AuditPage> {
    return this.page(ALL_PARTITIONS, (e) => e.requestId === requestId, search, { scan: 'requestId', value: requestId });
  }

  /**
   * The entries of the given chains that `match` and whose `at` lies in [from, to), at most `limit`, day by day;
   * within a day the chains are merged by (at, partition), each taken in its own order (its stream versions). That
   * order depends only on the chains, so the answer can stop anywhere and go on later from a position: the day of
   * its last entry and, per chain, the version of the last entry taken from it. Events appended meanwhile land at
   * a chain's tail (or on a later day), behind any position, so paging skips and repeats nothing.
   *
   * `truncated` is true only when another matching entry exists behind the answer's last one; `next` is then the
   * position to go on from. (An event recorded by another hub process just before midnight UTC but appended after
   * a reader has moved on to the next day's chains is the one event a reader can pass by.)
   */
  private async page(partitions: readonly number[], match: (e: ChainedAuditEntry) => boolean, search: AuditSearch, by?: IndexedBy | ScannedBy): Promise<AuditPage> {
    const days = auditDaysOf(search);
    const limit = search.limit ?? MAX_AUDIT_RESULTS;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_AUDIT_RESULTS) throw new ValidationError('invalid_request', `limit must be 1..${MAX_AUDIT_RESULTS}`, [{ path: 'query.limit', message: `must be 1..${MAX_AUDIT_RESULTS}` }]);
    const after = search.after;
    const first = after ? days.indexOf(after.day) : 0;
    if (after && (first < 0 || after.after.length !== AUDIT_PARTITIONS)) {
      throw new ValidationError('invalid_cursor', 'the cursor does not belong to this query', [{ path: 'query.cursor', message: 'not a position within the days asked for' }]);
    }
    await this.drain();
    const fromMs = search.from.getTime();
    const toMs = search.to ? search.to.getTime() : Number.POSITIVE_INFINITY;
    const wanted = (e: ChainedAuditEntry): boolean => {
      const at = Date.parse(e.at);
      return at >= fromMs && at < toMs && match(e);
    };
    const items: ChainedAuditEntry[] = [];
    let position: AuditPosition | null = null;
    for (let d = first; d < days.length; d++) {
      const day = days[d]!;
      const taken = d === first && after ? [...after.after] : Array.from({ length: AUDIT_PARTITIONS }, () => -1n);
      const chains = await Promise.all(
        partitions.map(async (p) => ({ p, entries: await this.readChain(auditStreamName(day, p), taken[p]! + 1n, wanted, by), next: 0 })),
      );
      for (;;) {
        let best: (typeof chains)[number] | null = null;
        for (const c of chains) {
          const head = c.entries[c.next];
          if (head && (best === null || head.entry.at < best.entries[best.next]!.entry.at)) best = c; // ties: the lower partition
        }
        if (best === null) break;
        if (items.length >= limit) return { days, items, truncated: true, next: position };
        const { version, entry } = best.entries[best.next++]!;
        items.push(entry);
        taken[best.p] = version;
        position = { day, after: [...taken] };
      }
    }
    return { days, items, truncated: false, next: null };
  }

  /**
   * Walk every chain of the given days from its genesis. `anchors` (stream name -> a head hash taken earlier and
   * kept outside the store) must each still be in their chain: a chain cut back behind its anchor, or gone, is a
   * break `anchor_missing` (a cut at the tail leaves a chain that is whole in itself).
   *
   * A chain this process found changed behind it (checkedHead: its last event there gone or holding another hash; each
   * chain it holds a head of is checked here first, so a rewrite since the last anchor is found too) is a break
   * `changed_behind_hub` at that event's version and one of `changedBehindHub`, what the process wrote there against
   * what the store holds, while the store does not hold it; its `heads` entry is the hash the process wrote, as its
   * anchors carry (the store's head of a forged chain, whole in itself, was handed out as the one to keep, and an
   * operator who kept it vouched for the forgery).
   */
  async verify(
    days: readonly string[],
    anchors: Readonly<Record<string, string>> = {},
  ): Promise<{
    ok: boolean;
    chains: number;
    events: number;
    anchorsChecked: number;
    breaks: readonly ChainBreak[];
    changedBehindHub: readonly ChangedBehindHub[];
    heads: Record<string, string>;
  }> {
    await this.drain();
    let chains = 0;
    let events = 0;
    const breaks: ChainBreak[] = [];
    const changedBehindHub: ChangedBehindHub[] = [];
    const heads: Record<string, string> = {};
    const streams = days.flatMap(chainsOf);
    const unknown = Object.keys(anchors).filter((s) => !streams.includes(s));
    if (unknown.length > 0) throw new ValidationError('anchor_outside_days', `${unknown.length} anchor(s) name a chain outside the days verified`);
    for (const stream of streams) {
      const own = this.heads.get(stream);
      if (own && own.version >= 0n) await this.readHead(stream, own);
      const changed = this.rewritten.get(stream);
      let stored: string | null = null;
      const anchor = anchors[stream];
      const walk = new ChainWalk(stream, anchor);
      for await (const page of this.chainPages(stream, 0n)) {
        walk.add(page.map((r) => r.data));
        const there = changed && page.find((r) => r.streamVersion === changed.version);
        if (there) stored = String(there.data['hash']);
      }
      const result = walk.result();
      const mismatch = changed !== undefined && stored !== changed.hash;
      if (result.events === 0 && anchor === undefined && !mismatch) continue;
      chains++;
      events += result.events;
      breaks.push(...result.breaks);
      if (mismatch) {
        breaks.push({ streamName: stream, index: Number(changed.version), reason: 'changed_behind_hub' });
        changedBehindHub.push({ streamName: stream, version: Number(changed.version), wrote: changed.hash, stored, head: result.events > 0 ? result.headHash : null });
        heads[stream] = changed.hash;
      } else if (result.events > 0) heads[stream] = result.headHash;
    }
    return { ok: breaks.length === 0, chains, events, anchorsChecked: Object.keys(anchors).length, breaks, changedBehindHub, heads };
  }

  /**
   * The head hash of every chain of `day` that has events: what an operator keeps outside the store to verify
   * against later (see verify's anchors). Stream names and hashes only: no personal data.
   */
  async headsOf(day: string): Promise<Record<string, string>> {
    await this.drain();
    const heads: Record<string, string> = {};
    for (const stream of chainsOf(day)) {
      // From the head this process last wrote (what another process appended since is read, nothing before it).
      const head = await this.readHead(stream, this.heads.get(stream) ?? null);
      // A chain found rewritten (checkedHead): the hash this process wrote, which the chain should still hold.
      if (head.version >= 0n) heads[stream] = this.rewritten.get(stream)?.hash ?? head.hash;
    }
    return heads;
  }

  /**
   * What an `audit anchor` line carries at `now`: the heads of the chains of the UTC day before and of `now`'s day.
   * The day before too: its chains take their last events up to midnight (and a request that began before it is
   * audited a moment after), and an anchor of today's chains alone left the last up to RTS_AUDIT_ANCHOR_SECONDS of
   * every day unanchored, so a cut at a day's tail went unseen by `POST /audit/verify`.
   */
  async anchorHeads(now: Date): Promise<Record<string, string>> {
    const today = now.toISOString().slice(0, 10);
    const yesterday = new Date(Date.parse(`${today}T00:00:00.000Z`) - 86_400_000).toISOString().slice(0, 10);
    return { ...(await this.headsOf(yesterday)), ...(await this.headsOf(today)) };
  }

  /**
   * A chain's audit events from `fromVersion` on that are `wanted`, with their versions. Given `by`, the field and
   * value every wanted event has, and the store's indexes, only the chain's events with that value are read (and
   * still filtered by `wanted`: the index narrows the read, it does not decide the answer); for a field without an
   * index, the store's scan hands back only those (the same).
   */
  private async readChain(
    stream: string,
    fromVersion: bigint,
    wanted: (e: ChainedAuditEntry) => boolean,
    by?: IndexedBy | ScannedBy,
  ): Promise<readonly { version: bigint; entry: ChainedAuditEntry }[]> {
    const taken: { version: bigint; entry: ChainedAuditEntry }[] = [];
    const index = this.options.eventsByField;
    const scan = index?.scan?.bind(index);
    const pages =
      by === undefined || !index
        ? this.chainPages(stream, fromVersion)
        : 'scan' in by
          ? scan
            ? this.scannedPages(scan, stream, fromVersion, by)
            : this.chainPages(stream, fromVersion)
          : this.pagesByField(index, stream, fromVersion, by);
    for await (const page of pages) {
      for (const e of page) {
        const entry = e.data as unknown as ChainedAuditEntry;
        if (e.type === AUDIT_EVENT_TYPE && wanted(entry)) taken.push({ version: e.streamVersion, entry });
      }
    }
    return taken;
  }

  /** A chain from `fromVersion` on, CHAIN_PAGE events at a time, with a turn of the event loop between reads. */
  private async *chainPages(stream: string, fromVersion: bigint): AsyncGenerator<readonly RecordedEvent[]> {
    for (let from = fromVersion; ; ) {
      const { events } = await this.options.store.readStream(stream, { fromVersion: from, maxCount: CHAIN_PAGE });
      if (events.length > 0) yield events;
      if (events.length < CHAIN_PAGE) return;
      from = events[events.length - 1]!.streamVersion + 1n;
      await nextTurn();
    }
  }

  /**
   * The events of a chain with one field's value, compared by the store as it reads the chain (no index of the
   * field): CHAIN_PAGE versions a read, with a turn of the event loop between reads, up to the chain's last version
   * when the walk began (what is appended later is a later page's, as for chainPages).
   */
  private async *scannedPages(scan: NonNullable<AuditEventsByField['scan']>, stream: string, fromVersion: bigint, by: ScannedBy): AsyncGenerator<readonly RecordedEvent[]> {
    const { currentVersion: last } = await this.options.store.readStream(stream, { maxCount: 1 });
    if (last === null) return;
    for (let from = fromVersion; from <= last; from += BigInt(CHAIN_PAGE)) {
      if (from > fromVersion) await nextTurn();
      const events = await scan(stream, from, from + BigInt(CHAIN_PAGE), by.scan, by.value);
      if (events.length > 0) yield events;
    }
  }

  /** chainPages of the events with one field's value only, through the store's index: the same pages and turns between reads. */
  private async *pagesByField(index: AuditEventsByField, stream: string, fromVersion: bigint, by: IndexedBy): AsyncGenerator<readonly RecordedEvent[]> {
    for (let from = fromVersion; ; ) {
      const events = await index.read(stream, from, by.field, by.value, CHAIN_PAGE);
      if (events.length > 0) yield events;
      if (events.length < CHAIN_PAGE) return;
      from = events[events.length - 1]!.streamVersion + 1n;
      await nextTurn();
    }
  }
}

/**
 * The head an attempt of `unsure` left, if `events` (read from its chain) show it stored: its first event where the
 * append put it (an append is whole or nothing, at the version expected), with the hash it was linked with.
 */
const storedIn = (events: readonly RecordedEvent[], unsure: readonly Unsure[]): Head | null => {
  for (const attempt of unsure) {
    const event = events.find((e) => e.streamVersion === attempt.version);
    if (event?.type === AUDIT_EVENT_TYPE && String(event.data['hash']) === attempt.hash) return attempt.head;
  }
  return null;
};

/** Every chain's partition, for a search whose events may be in any chain of a day. */
const ALL_PARTITIONS: readonly number[] = Array.from({ length: AUDIT_PARTITIONS }, (_, p) => p);

/** The chains of one day, in partition order. */
const chainsOf = (day: string): string[] => Array.from({ length: AUDIT_PARTITIONS }, (_, p) => auditStreamName(day, p));

/**
 * Checks an audit query's interval [from, to), `to` null meaning up to `now`: refuses an empty or reversed one
 * (invalid_interval) and one longer than MAX_AUDIT_DAYS (interval_too_wide), so that an answer is never silently
 * cut to fewer days than asked for. The one check of every search and verification; returns the end in ms.
 */
export const checkAuditInterval = (search: Pick<AuditSearch, 'from' | 'to' | 'now' | 'source'>): number => {
  const fromPath = `${search.source ?? 'query'}.from`;
  const from = search.from.getTime();
  const to = search.to ? search.to.getTime() : Math.max(search.now.getTime(), from);
  // Nothing was audited before 1970, and a day of years 0-99 or before 0 has no 'YYYY-MM-DD' name the answer's
  // `days` could carry: a bound there is a mistake, said as one rather than answered with days that do not exist.
  if (from < 0 || (search.to && to < 0)) {
    const path = search.to && to < 0 ? `${search.source ?? 'query'}.to` : fromPath;
    throw new ValidationError('invalid_interval', 'an audit query cannot reach before 1970-01-01T00:00:00Z', [{ path, message: 'before 1970' }]);
  }
  // After now (beyond a caller's clock ahead by the skew uploads are given): nothing can be there yet, and a
  // verification of days to come answered ok with 0 chains, as if they had been checked.
  if (from > search.now.getTime() + CLOCK_SKEW_SECONDS * 1000) {
    throw new ValidationError('invalid_interval', 'from must not lie after now', [{ path: fromPath, message: 'after now' }]);
  }
  if (search.to && to <= from) throw new ValidationError('invalid_interval', 'from must lie before to', [{ path: fromPath, message: 'not before to' }]);
  if (to - from > MAX_AUDIT_DAYS * 86_400_000) {
    throw new ValidationError('interval_too_wide', `an audit query may span at most ${MAX_AUDIT_DAYS} days`, [{ path: fromPath, message: `at most ${MAX_AUDIT_DAYS} days before to` }]);
  }
  return to;
};

/** The UTC days a search's [from, to) touches ('YYYY-MM-DD'), `to` null meaning up to `now` (checkAuditInterval). */
export const auditDaysOf = (search: Pick<AuditSearch, 'from' | 'to' | 'now' | 'source'>): string[] => {
  const to = checkAuditInterval(search);
  // [from, to): the last instant in it is to - 1 ms (an open end includes now itself).
  return utcDays(search.from, search.to ? to - 1 : to);
};

/**
 * The UTC days a verification walks, whole chains: those its `from` and `to` fall on, both included. The interval
 * is checked as a search's (checkAuditInterval), so a range that is reversed, empty or wider than MAX_AUDIT_DAYS is
 * refused rather than cut: a verification that answered ok for fewer days than asked said nothing of the rest.
 */
export const verifyDaysOf = (range: Readonly<{ from: Date; to: Date; now: Date; source?: 'query' | 'body' }>): string[] => {
  checkAuditInterval(range);
  return utcDays(range.from, range.to.getTime());
};

/** The start of the UTC day of an instant, by arithmetic: Date.UTC reads the years 0-99 as 1900-1999. */
export const startOfUtcDayMillis = (ms: number): number => Math.floor(ms / 86_400_000) * 86_400_000;

/** The UTC days from `from`'s to the one of `lastMs` ('YYYY-MM-DD'); the callers have bounded the interval. */
const utcDays = (from: Date, lastMs: number): string[] => {
  const days: string[] = [];
  for (let t = startOfUtcDayMillis(from.getTime()); t <= lastMs; t += 86_400_000) days.push(new Date(t).toISOString().slice(0, 10));
  return days;
};

/** The UTC day after a day ('YYYY-MM-DD'). */
const nextUtcDay = (day: string): string => new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
