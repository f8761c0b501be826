import { HUB_MADE_REASONS } from '../consultation/consultation-downlink';
import type { ConsultationDownlinkEnvelope } from '../consultation/consultation-messages';
import { consultationDataKey } from '../consultation/sealed-consultations';
import { isExistingConsultationId } from '../../domain/consultation/legacy-id';
import { loggableId } from '../../domain/monitoring/cpr-like';
import type { DownlinkEnvelope } from '../directory/directory-messages';
import { uuidV5 } from '../ids';
import type { Clock } from '../ports/clock';
import type { PreparedDownlink } from '../ports/downlink-outbox';
import { ExpectedVersionConflictError, type EventStore, type RecordedEvent } from '../ports/event-store';
import { isSealed, type PatientDataProtection } from '../ports/patient-data-protection';
import { Projector, type ProjectionTarget, type ProjectorLogger } from '../projector';

/**
 * Downlink messages held for a system that cannot be written to yet, so that none is lost.
 *
 * With message security on, a message is encrypted for its receiving system's valid encryption key. A system
 * that has none at that moment (it registered none yet, or rotated with a gap: its old key retired before its
 * successor's validFrom) cannot be written to. Such a message is not dropped: it is recorded on the system's own
 * stream `downlink-held-<systemId>` (system ids are no personal data) as
 *
 *   DownlinkMessageHeld  { systemId, queue, envelope, reason, heldAt }   id: UUIDv5 of queue + envelope id, so a
 *                                                                      publisher's resend after a crash holds it once
 *   DownlinkHeldReleased { systemId, throughVersion, releasedAt }       every held message up to throughVersion has
 *                                                                      been accepted by the broker (or was dropped as
 *                                                                      undeliverable); id from systemId + throughVersion
 *
 * and the publishers move on, so one system's missing key does not stop anyone else's downlink. The
 * HeldDownlinkReleaser (held-downlink-releaser.ts) sends them, in order, once the system has a valid key.
 *
 * Order: while a system has held messages not yet released, every later message to it is held too (reason
 * `behind_held`), without trying to encode it, so the system never gets a newer message before an older one.
 * `send` serialises the check-and-hold per system within the process; across processes (and against the
 * releaser) every hold is appended with the stream version the check saw, and a conflict means: look again.
 * The encoding (`prepare`: with message security a JWE per message, several crypto round trips) is started
 * before that, outside the per-system chain, and only its result is taken in turn: encoded one after another a
 * system's downlink was capped at 1 / (one encoding's latency), which a busy event loop stretches, and under a
 * heavy uplink the publisher fell behind for as long as the uplink ran (bench/downlink-lag.js, rate 20). The
 * check, the hold and the order in which messages are handed to the broker stay serialised as before. A message
 * to a system whose held messages this process has not seen yet (the view is caught up in the chain) may be
 * encoded ahead for nothing: it is still held behind them, and that encoding is dropped.
 *
 *   const held = new HeldDownlinks({ store, clock, logger });
 *   await held.send(queue, envelope, () => outbox.prepare(queue, envelope));   // sends it, or holds it
 *
 * Which systems have held messages comes from a small in-memory projection of the two event types, read with
 * readAll's type filter (they are rare), rebuilt from position 0 at every start and caught up before each check.
 * The envelope is stored as it would have been sent, but for a consultation message's texts about the patient (an
 * offer's clinicalQuestion and summary, a report's diagnosis and recommendations, a decline's or cancellation's own
 * reason): those are sealed under the consultation's data key, as in the consultation's own events
 * (sealed-consultations.ts), so that erasing the consultation's content (with its patient, or by id) reaches this
 * copy too. Held in clear, they outlived every erasure in the events and backups, and a message released after the
 * erasure sent them to the system. At release a message of a consultation whose content is erased goes out as the
 * consultation downlink would send it then (consultation-downlink.ts): an offer, decline or cancel with '' for its
 * texts, a report not at all. Never in a stream name, a log line or a metric label.
 */
export type HeldEnvelope = DownlinkEnvelope | ConsultationDownlinkEnvelope;
export type HoldReason = 'no_encryption_key' | 'behind_held';
/** `envelope` as stored: a consultation message's texts sealed (`openHeld` gives the one to send). */
export type HeldMessage = Readonly<{ version: bigint; queue: string; envelope: HeldEnvelope; reason: HoldReason }>;

export const DOWNLINK_MESSAGE_HELD = 'DownlinkMessageHeld';
export const DOWNLINK_HELD_RELEASED = 'DownlinkHeldReleased';
export const HELD_DOWNLINK_EVENT_TYPES: ReadonlySet<string> = new Set([DOWNLINK_MESSAGE_HELD, DOWNLINK_HELD_RELEASED]);

export const heldDownlinkStream = (systemId: string): string => `downlink-held-${systemId}`;
export const heldEventId = (queue: string, envelopeId: string): string => uuidV5(`downlink-held/${queue}/${envelopeId}`);
const releasedEventId = (systemId: string, throughVersion: bigint): string => uuidV5(`downlink-held-released/${systemId}/${throughVersion}`);

/** The payload fields of a consultation message that hold texts about the patient (sealed while held). */
const TEXT_FIELDS: Readonly<Record<string, readonly string[]>> = {
  'consultation.offered': ['clinicalQuestion', 'summary'],
  'consultation.report': ['diagnosis', 'recommendations'],
  'consultation.declined': ['reason'],
  'consultation.cancelled': ['reason'],
};

/** The texts of `envelope` to seal: non-empty, and not one of the hub's own fixed reasons. */
const textFieldsOf = (envelope: HeldEnvelope): readonly string[] => {
  const payload = envelope.payload as Record<string, unknown>;
  return (TEXT_FIELDS[envelope.type] ?? []).filter((field) => {
    const text = payload[field];
    return typeof text === 'string' && text !== '' && !(field === 'reason' && HUB_MADE_REASONS.has(text));
  });
};

const consultationIdOf = (envelope: HeldEnvelope): string => String((envelope.payload as { consultationId?: unknown }).consultationId);
const heldContext = (envelope: HeldEnvelope, field: string): string => `consultation/${consultationIdOf(envelope)}/held/${envelope.id}/${field}`;
const isErasedError = (error: unknown): boolean => (error as { code?: unknown } | null)?.code === 'patient_erased';
const isUnavailable = (error: unknown): boolean => (error as { kind?: unknown } | null)?.kind === 'unavailable';

type SystemHeld = { version: bigint; releasedThrough: bigint; pending: bigint[] };
const NONE = -1n;
const empty = (): SystemHeld => ({ version: NONE, releasedThrough: NONE, pending: [] });

/** Per system: the held stream's version, how far it is released, and the versions of the held messages after that. */
export class HeldDownlinkModel implements ProjectionTarget {
  readonly eventTypes = HELD_DOWNLINK_EVENT_TYPES;
  private position = 0n;
  private readonly systems = new Map<string, SystemHeld>();

  async checkpoint(): Promise<bigint> {
    return this.position;
  }

  async apply(events: readonly RecordedEvent[], checkpoint: bigint): Promise<void> {
    for (const event of events) {
      const systemId = event.data['systemId'];
      if (typeof systemId !== 'string' || event.streamName !== heldDownlinkStream(systemId)) continue;
      const s = this.systems.get(systemId) ?? empty();
      s.version = event.streamVersion;
      if (event.type === DOWNLINK_MESSAGE_HELD) s.pending.push(event.streamVersion);
      else if (event.type === DOWNLINK_HELD_RELEASED) {
        const through = BigInt(String(event.data['throughVersion']));
        if (through > s.releasedThrough) s.releasedThrough = through;
        s.pending = s.pending.filter((v) => v > s.releasedThrough);
      }
      this.systems.set(systemId, s);
    }
    this.position = checkpoint;
  }

  async reset(): Promise<void> {
    this.position = 0n;
    this.systems.clear();
  }

  of(systemId: string): Readonly<{ version: bigint; releasedThrough: bigint; pending: readonly bigint[] }> {
    return this.systems.get(systemId) ?? empty();
  }

  pendingSystems(): string[] {
    return [...this.systems].filter(([, s]) => s.pending.length > 0).map(([id]) => id);
  }

  pendingCount(): number {
    let n = 0;
    for (const s of this.systems.values()) n += s.pending.length;
    return n;
  }
}

export type HeldDownlinkLogger = ProjectorLogger;

export type HeldDownlinksDependencies = Readonly<{
  store: EventStore;
  clock: Clock;
  logger?: HeldDownlinkLogger;
  /** A message newly held (not a resend of one already held): for metrics. */
  onHeld?: (reason: HoldReason) => void;
  /** Held messages released (sent, or dropped as undeliverable): for metrics. */
  onReleased?: (count: number) => void;
  /** Seals a held consultation message's texts under the consultation's data key, and opens them at release. */
  protection: PatientDataProtection;
}>;

export class HeldDownlinks {
  private readonly model = new HeldDownlinkModel();
  private readonly projector: Projector;
  /** The tail of each system's check-and-hold chain in this process. */
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: HeldDownlinksDependencies) {
    this.projector = new Projector(deps.store, this.model, deps.logger, 1000, 'held-downlink', 0);
  }

  /** Brings the view of held messages up to everything appended before the call. */
  catchUp(): Promise<void> {
    return this.projector.catchUp();
  }

  /** Systems with held messages not yet released (as of the last catchUp). */
  pendingSystems(): string[] {
    return this.model.pendingSystems();
  }

  /** Held messages not yet released, over all systems (as of the last catchUp). */
  pendingCount(): number {
    return this.model.pendingCount();
  }

  /**
   * Send one downlink message, or hold it: held when the system already has held messages not yet released, or
   * when `prepare` finds no valid encryption key for it. Resolves once it is accepted by the broker, held (durably),
   * or dropped as undeliverable (`prepare` logged why). Rejects only when it may work on a retry (store, broker).
   */
  async send(queue: string, envelope: HeldEnvelope, prepare: () => Promise<PreparedDownlink>): Promise<void> {
    // Encoded ahead, concurrently with the messages before it in the chain (see the class comment); not when the
    // system is already known to have held messages: this one will be held behind them, unencoded.
    const ahead = this.model.of(envelope.systemId).pending.length > 0 ? undefined : prepare();
    ahead?.catch(() => undefined); // its failure is the chain's to report; it is not left unhandled meanwhile
    const ready = await this.serialized(envelope.systemId, () => this.sendOrHold(queue, envelope, prepare, ahead));
    if (ready) await ready.send();
  }

  /** The oldest held messages of a system not yet released (at most `limit`), and its stream's version then. */
  async unreleased(systemId: string, limit: number): Promise<Readonly<{ version: bigint | null; messages: readonly HeldMessage[] }>> {
    await this.catchUp();
    let released = this.model.of(systemId).releasedThrough;
    const { events, currentVersion } = await this.deps.store.readStream(heldDownlinkStream(systemId), { fromVersion: released + 1n, maxCount: limit });
    let messages: HeldMessage[] = [];
    for (const e of events) {
      if (e.type === DOWNLINK_HELD_RELEASED) {
        // Released by another process since the view was caught up.
        released = BigInt(String(e.data['throughVersion']));
        messages = messages.filter((m) => m.version > released);
      } else if (e.type === DOWNLINK_MESSAGE_HELD && e.streamVersion > released) {
        messages.push({ version: e.streamVersion, queue: String(e.data['queue']), envelope: e.data['envelope'] as unknown as HeldEnvelope, reason: e.data['reason'] as HoldReason });
      }
    }
    return { version: currentVersion, messages };
  }

  /**
   * Records that every held message of the system up to `throughVersion` is released. False when the stream moved
   * past `expectedVersion` meanwhile (a message held since, or another process's release): read again.
   */
  async markReleased(systemId: string, throughVersion: bigint, expectedVersion: bigint, count: number): Promise<boolean> {
    try {
      const result = await this.deps.store.appendToStream(
        heldDownlinkStream(systemId),
        [{ id: releasedEventId(systemId, throughVersion), type: DOWNLINK_HELD_RELEASED, data: { systemId, throughVersion: throughVersion.toString(), releasedAt: this.now() } }],
        { expectedVersion },
      );
      if (!result.idempotent) {
        this.deps.onReleased?.(count);
        this.info({ systemId, count, throughVersion: throughVersion.toString() }, 'held downlink messages released: the system has a valid encryption key again');
      }
      return true;
    } catch (error) {
      if (error instanceof ExpectedVersionConflictError) return false;
      throw error;
    }
  }

  private async sendOrHold(
    queue: string,
    envelope: HeldEnvelope,
    prepare: () => Promise<PreparedDownlink>,
    ahead?: Promise<PreparedDownlink>,
  ): Promise<Extract<PreparedDownlink, { kind: 'ready' }> | null> {
    // The encoding begun ahead serves the first look only; after a conflict the message is encoded again, now.
    let encoding = ahead;
    for (;;) {
      await this.catchUp();
      const state = this.model.of(envelope.systemId);
      if (state.pending.length > 0) {
        if (await this.hold(queue, envelope, 'behind_held', state.version)) return null;
        encoding = undefined;
        continue;
      }
      const prepared = await (encoding ?? prepare());
      encoding = undefined;
      if (prepared.kind === 'ready') return prepared;
      if (prepared.kind === 'undeliverable') return null;
      if (await this.hold(queue, envelope, 'no_encryption_key', state.version)) return null;
    }
  }

  /**
   * The envelope as it is kept while held: a consultation message's texts sealed under the consultation's data key
   * (bound to the message and field), or '' when that key is erased already (the content was erased: nothing to
   * keep, and release sends none of it).
   */
  private async sealed(envelope: HeldEnvelope): Promise<HeldEnvelope> {
    const fields = textFieldsOf(envelope);
    if (fields.length === 0) return envelope;
    const payload: Record<string, unknown> = { ...(envelope.payload as Record<string, unknown>) };
    const key = consultationDataKey(consultationIdOf(envelope));
    for (const field of fields) {
      try {
        payload[field] = await this.deps.protection.seal(key, String(payload[field]), heldContext(envelope, field), { openedSoon: false });
      } catch (error) {
        if (!isErasedError(error)) throw error;
        for (const f of fields) payload[f] = '';
        break;
      }
    }
    return { ...envelope, payload } as HeldEnvelope;
  }

  /**
   * The held envelope to send (opened by the release just before it is sent, so that a pass that finds no key yet
   * reads no keys): its texts opened; for a consultation whose content was erased (its key gone), an offer, decline
   * or cancel with '' as its texts and a report not at all (null), as the consultation downlink sends them after an
   * erasure. Also for a message held in clear by an earlier build. A key store that cannot be read throws (the
   * release is tried again), never looks erased.
   */
  async openHeld(envelope: HeldEnvelope): Promise<HeldEnvelope | null> {
    // Every consultation message with texts is asked about, empty ones too: one held after the erasure kept ''.
    const fields = TEXT_FIELDS[envelope.type] ?? [];
    if (fields.length === 0) return envelope;
    const key = consultationDataKey(consultationIdOf(envelope));
    const payload: Record<string, unknown> = { ...(envelope.payload as Record<string, unknown>) };
    let erased = await this.deps.protection.isErased(key);
    for (const field of fields) {
      if (erased) break;
      const text = payload[field];
      if (!isSealed(text)) continue;
      let opened: string | null;
      try {
        opened = await this.deps.protection.open(key, text, heldContext(envelope, field));
      } catch {
        // A key store that did not answer (PostgreSQL away, SQLite locked past its busy timeout: errors of no one
        // kind) is no erasure: taken for one, a single failed read dropped a held report for good and sent an offer
        // without its texts. So the store is asked again: one that still fails throws (the release is tried again);
        // one that answers tells erased, or opens it now, or the text is altered or damaged (as unreadable).
        opened = (await this.deps.protection.isErased(key)) ? null : await this.deps.protection.open(key, text, heldContext(envelope, field)).catch((error: unknown) => {
          if (isUnavailable(error)) throw error;
          return null;
        });
      }
      if (opened === null) erased = true;
      else payload[field] = opened;
    }
    if (erased) {
      if (envelope.type === 'consultation.report') return null;
      for (const field of fields) if (typeof payload[field] === 'string' && !(field === 'reason' && HUB_MADE_REASONS.has(String(payload[field])))) payload[field] = '';
    }
    return { ...envelope, payload } as HeldEnvelope;
  }

  /** True when held (now or before: a resend); false when the stream moved since `version` was read. */
  private async hold(queue: string, envelope: HeldEnvelope, reason: HoldReason, version: bigint): Promise<boolean> {
    const { id, type, systemId, correlationId } = envelope;
    // A consultation's message also by its consultation: the id a desk quotes. Checked here (a message held behind
    // another is held unencoded, before the contract's check): never one that may hold a CPR number.
    const consultationId = (envelope.payload as { consultationId?: unknown }).consultationId;
    const about = type.startsWith('consultation.') && typeof consultationId === 'string' && isExistingConsultationId(consultationId) ? { consultationId } : {};
    try {
      const result = await this.deps.store.appendToStream(
        heldDownlinkStream(systemId),
        [{ id: heldEventId(queue, id), type: DOWNLINK_MESSAGE_HELD, data: { systemId, queue, envelope: await this.sealed(envelope), reason, heldAt: this.now() }, metadata: { correlationId, causationId: id } }],
        { expectedVersion: version === NONE ? 'no_stream' : version },
      );
      if (!result.idempotent) {
        this.deps.onHeld?.(reason);
        this.deps.logger?.warn(
          { id, type, systemId, correlationId: loggableId(correlationId), ...about, reason, heldVersion: result.nextExpectedVersion.toString() },
          reason === 'no_encryption_key'
            ? 'downlink message held: the system has no valid encryption key; sent when it registers one'
            : 'downlink message held behind earlier ones the system has not been sent yet',
        );
      }
      return true;
    } catch (error) {
      if (error instanceof ExpectedVersionConflictError) return false;
      throw error;
    }
  }

  /** Runs `work` after every earlier call for the same system in this process has ended (whatever its outcome). */
  private serialized<T>(systemId: string, work: () => Promise<T>): Promise<T> {
    const run = (this.chains.get(systemId) ?? Promise.resolve()).then(work);
    const tail = run.catch(() => undefined);
    this.chains.set(systemId, tail);
    void tail.then(() => {
      if (this.chains.get(systemId) === tail) this.chains.delete(systemId);
    });
    return run;
  }

  private now(): string {
    return this.deps.clock.now().toUTC().toISO()!;
  }

  private info(fields: object, message: string): void {
    if (this.deps.logger?.info) this.deps.logger.info(fields, message);
    else this.deps.logger?.warn(fields, message);
  }
}
