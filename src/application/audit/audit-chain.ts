import { createHash } from 'node:crypto';

/**
 * The audit trail's tamper evidence, pure: every audit event carries the hash of the previous event of its
 * chain and its own hash over (previous hash, its fields). A chain is one stream `audit-<yyyy-mm-dd>-<p>`:
 * per UTC day and per partition p in 0..AUDIT_PARTITIONS-1, so no stream is written by every request.
 * The partition follows the patient (or, when no patient is concerned, the subject), so the events about one
 * patient on one day are one chain and a query by patient reads one stream per day.
 *
 * Changing, removing or reordering an event breaks the chain at that point; removing the tail of a chain is not
 * detectable by the chain alone (anchor the chain heads elsewhere for that: GET /audit/verify reports them).
 */
export const AUDIT_PARTITIONS = 8;
export const AUDIT_EVENT_TYPE = 'AuditRecorded';

export type AuditOutcome = 'allowed' | 'denied' | 'error';

/** One access, as recorded. No patient identifier: the patient is the pseudonymous key. */
export type AuditEntry = Readonly<{
  /** ISO-8601 UTC with milliseconds. */
  at: string;
  subject: string;
  role: string;
  systemId: string | null;
  /** e.g. observations.read, document.read, observations.write, patient.erase, erasures.list, audit.read. */
  action: string;
  patientKey: string | null;
  /** The document uniqueId, consultation id or system id the request was about, when there is one. */
  resource: string | null;
  ip: string;
  requestId: string;
  outcome: AuditOutcome;
  /** HTTP status of the answer. */
  status: number;
  /** Why a request was denied (policy reason), or the problem code of one that failed (outcome 'error'). */
  reason: string | null;
  /**
   * Whether the caller was the patient the entry is recorded under (a patient's token whose patient key, the hub's
   * own or made from an identity provider's CPR number, is `patientKey`): recorded for patients' requests only, and
   * only by builds since 2026-12-06 (absent on older entries). A flag, not the caller's key: the entry holds no
   * more of anyone than it did. Lets the patient's export tell their own failed requests from another patient's
   * attempts when the subject does not say (an identity provider's `sub` is not the hub's pseudonym).
   */
  selfAccess?: boolean;
}>;

export type ChainedAuditEntry = AuditEntry & Readonly<{ prevHash: string; hash: string }>;

export const auditDay = (at: string): string => at.slice(0, 10);

const fnv1a = (text: string): number => {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
};

export const auditPartition = (entry: Pick<AuditEntry, 'patientKey' | 'subject'>): number => fnv1a(entry.patientKey ?? `subject:${entry.subject}`) % AUDIT_PARTITIONS;

export const auditStreamName = (day: string, partition: number): string => `audit-${day}-${partition}`;

export const auditStreamOf = (entry: AuditEntry): string => auditStreamName(auditDay(entry.at), auditPartition(entry));

/** The previous hash of a chain's first event: names the chain, so events cannot be moved between chains. */
export const genesisHash = (streamName: string): string => createHash('sha256').update(`genesis/${streamName}`, 'utf8').digest('hex');

/**
 * Field order fixed here, so the hash does not depend on how a store returns JSON objects. `selfAccess` is hashed
 * only where recorded: an entry without it (all entries of older builds) hashes as it always did.
 */
const canonical = (e: AuditEntry): string =>
  JSON.stringify([
    e.at, e.subject, e.role, e.systemId, e.action, e.patientKey, e.resource, e.ip, e.requestId, e.outcome, e.status, e.reason,
    ...(typeof e.selfAccess === 'boolean' ? [e.selfAccess] : []),
  ]);

export const hashOf = (prevHash: string, entry: AuditEntry): string => createHash('sha256').update(prevHash, 'utf8').update('\n').update(canonical(entry), 'utf8').digest('hex');

/** Link `entries` to a chain whose last hash is `prevHash`. */
export const chain = (prevHash: string, entries: readonly AuditEntry[]): ChainedAuditEntry[] => {
  const out: ChainedAuditEntry[] = [];
  let prev = prevHash;
  for (const entry of entries) {
    const hash = hashOf(prev, entry);
    out.push({ ...pick(entry), prevHash: prev, hash });
    prev = hash;
  }
  return out;
};

/** Only the entry's own fields (a caller's object may carry more). */
export const pick = (e: AuditEntry): AuditEntry => ({
  at: e.at,
  subject: e.subject,
  role: e.role,
  systemId: e.systemId,
  action: e.action,
  patientKey: e.patientKey,
  resource: e.resource,
  ip: e.ip,
  requestId: e.requestId,
  outcome: e.outcome,
  status: e.status,
  reason: e.reason,
  ...(typeof e.selfAccess === 'boolean' ? { selfAccess: e.selfAccess } : {}),
});

export type ChainBreak = Readonly<{ streamName: string; index: number; reason: 'prev_hash_mismatch' | 'hash_mismatch' | 'malformed' | 'anchor_missing' | 'changed_behind_hub' }>;
export type ChainVerification = Readonly<{ streamName: string; events: number; headHash: string; breaks: readonly ChainBreak[] }>;

/**
 * Walk one chain from its genesis: every event's prevHash must be the previous hash, and its hash must recompute.
 *
 * A chain alone cannot show that its newest events were cut off: the shorter chain is still whole. An `anchor`, a
 * head hash taken earlier and kept elsewhere (the `heads` of an earlier verification, or the hub's periodic
 * 'audit anchor' log line), closes that gap: it must still be in the chain, else the break is `anchor_missing`
 * at the chain's length.
 */
export const verifyChain = (streamName: string, events: readonly Readonly<Record<string, unknown>>[], anchor?: string): ChainVerification => {
  const walk = new ChainWalk(streamName, anchor);
  walk.add(events);
  return walk.result();
};

/** verifyChain one page of events at a time: a long chain is read and checked in bounded pieces. */
export class ChainWalk {
  private readonly breaks: ChainBreak[] = [];
  private prev: string;
  private anchored: boolean;
  private index = 0;

  constructor(
    private readonly streamName: string,
    private readonly anchor?: string,
  ) {
    this.prev = genesisHash(streamName);
    this.anchored = anchor === undefined;
  }

  /** The chain's next events, in order. */
  add(events: readonly Readonly<Record<string, unknown>>[]): void {
    const { streamName } = this;
    for (const data of events) {
      const index = this.index++;
      const e = data as Partial<ChainedAuditEntry>;
      if (typeof e.hash !== 'string' || typeof e.prevHash !== 'string' || typeof e.at !== 'string') {
        this.breaks.push({ streamName, index, reason: 'malformed' });
        continue;
      }
      if (e.prevHash !== this.prev) this.breaks.push({ streamName, index, reason: 'prev_hash_mismatch' });
      if (hashOf(e.prevHash, e as ChainedAuditEntry) !== e.hash) this.breaks.push({ streamName, index, reason: 'hash_mismatch' });
      this.prev = e.hash;
      if (e.hash === this.anchor) this.anchored = true;
    }
  }

  result(): ChainVerification {
    const breaks = this.anchored ? this.breaks : [...this.breaks, { streamName: this.streamName, index: this.index, reason: 'anchor_missing' as const }];
    return { streamName: this.streamName, events: this.index, headHash: this.prev, breaks };
  }
}
