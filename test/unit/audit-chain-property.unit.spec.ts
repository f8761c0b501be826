import { createHash } from 'node:crypto';
// The audit trail's tamper evidence as a property (fast-check): random chains, each tampered with in one random way.
// What audit-chain.ts promises: changing, removing, reordering or moving an event breaks the chain; cutting its tail,
// or rewriting it from some event on with every hash recomputed, is seen only against an anchor (a head hash kept
// elsewhere), and then always; an untouched chain verifies clean, with or without its anchor.
import fc from 'fast-check';
import { chain, genesisHash, verifyChain, type AuditEntry, type ChainedAuditEntry } from '../../src/application/audit/audit-chain';

const STREAM = 'audit-2026-12-03-3';

const entryArb: fc.Arbitrary<AuditEntry> = fc.record({
  at: fc.integer({ min: 0, max: 86_399_999 }).map((ms) => new Date(Date.UTC(2026, 11, 3) + ms).toISOString()),
  subject: fc.constantFrom('dr-chen', 'nurse-li', 'patient-app'),
  role: fc.constantFrom('clinician', 'patient', 'dpo'),
  systemId: fc.option(fc.constantFrom('xian', 'chengdu'), { nil: null }),
  action: fc.constantFrom('observations.read', 'observations.write', 'document.read', 'patient.erase'),
  patientKey: fc.option(fc.constantFrom(`p${'a'.repeat(32)}`, `p${'b'.repeat(32)}`), { nil: null }),
  resource: fc.option(fc.constantFrom('2.25.1', '2.25.2'), { nil: null }),
  ip: fc.constantFrom('127.0.0.1', '10.0.0.7'),
  requestId: fc.uuid(),
  outcome: fc.constantFrom('allowed' as const, 'denied' as const, 'error' as const),
  status: fc.constantFrom(200, 201, 403, 404, 500),
  reason: fc.option(fc.constantFrom('not_your_patient', 'storage_unavailable'), { nil: null }),
});

type Tamper =
  | { kind: 'edit'; at: number; field: 'subject' | 'action' | 'status' | 'at' }
  | { kind: 'delete'; at: number }
  | { kind: 'swap'; at: number; with: number }
  | { kind: 'move' }
  | { kind: 'truncate'; keep: number }
  | { kind: 'rewrite'; at: number };

const tamperArb: fc.Arbitrary<Tamper> = fc.oneof(
  fc.record({ kind: fc.constant('edit' as const), at: fc.nat(), field: fc.constantFrom('subject' as const, 'action' as const, 'status' as const, 'at' as const) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('swap' as const), at: fc.nat(), with: fc.nat() }),
  fc.constant({ kind: 'move' as const }),
  fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat() }),
  fc.record({ kind: fc.constant('rewrite' as const), at: fc.nat() }),
);

const edited = (e: ChainedAuditEntry, field: 'subject' | 'action' | 'status' | 'at'): ChainedAuditEntry =>
  field === 'status' ? { ...e, status: e.status + 1 } : field === 'at' ? { ...e, at: new Date(Date.parse(e.at) + 1).toISOString() } : { ...e, [field]: `${e[field]}x` };

describe('audit chain tamper evidence under random tampering', () => {
  const runs = Number(process.env['RTS_MODEL_RUNS'] ?? 500);
  it(`finds every change, removal, reordering and move; a cut tail or a rewrite only against the anchor, and then always (${runs} runs)`, () => {
    fc.assert(
      fc.property(fc.array(entryArb, { minLength: 1, maxLength: 12 }), tamperArb, (entries, tamper) => {
        const original = chain(genesisHash(STREAM), entries);
        const anchor = original[original.length - 1]!.hash;
        expect(verifyChain(STREAM, original).breaks).toEqual([]);
        expect(verifyChain(STREAM, original, anchor).breaks).toEqual([]);

        const n = original.length;
        let events: ChainedAuditEntry[] = original.slice();
        let stream = STREAM;
        // What the chain alone must show (true), or only the anchor ('anchor').
        let seen: true | 'anchor';
        switch (tamper.kind) {
          case 'edit':
            events[tamper.at % n] = edited(events[tamper.at % n]!, tamper.field);
            seen = true;
            break;
          case 'delete':
            if (n < 2) return; // removing the only event is a cut tail, below
            events.splice(tamper.at % (n - 1), 1); // not the last: that is a cut tail
            seen = true;
            break;
          case 'swap': {
            const [i, j] = [tamper.at % n, tamper.with % n];
            if (i === j) return;
            [events[i], events[j]] = [events[j]!, events[i]!];
            seen = true;
            break;
          }
          case 'move':
            stream = 'audit-2026-12-03-4'; // the same events presented as another chain
            seen = true;
            break;
          case 'truncate':
            events = events.slice(0, tamper.keep % n);
            seen = 'anchor';
            break;
          case 'rewrite': {
            // Change one event and recompute every hash from it on: a whole, shorter-lived chain.
            const from = tamper.at % n;
            const changed = edited(events[from]!, 'subject');
            events = [...events.slice(0, from), ...chain(from === 0 ? genesisHash(STREAM) : events[from - 1]!.hash, [changed, ...events.slice(from + 1)])];
            seen = 'anchor';
            break;
          }
        }
        const alone = verifyChain(stream, events).breaks;
        const anchored = verifyChain(stream, events, anchor).breaks;
        expect({ tamper, anchored: anchored.length > 0 }).toEqual({ tamper, anchored: true });
        expect({ tamper, alone: alone.length > 0 }).toEqual({ tamper, alone: seen === true });
      }),
      { numRuns: runs },
    );
  });
});


describe('audit chain: selfAccess (recorded since 2026-12-06)', () => {
  const entry = (n: number, extra: Partial<AuditEntry> = {}): AuditEntry => ({
    at: `2026-12-06T10:00:0${n}.000Z`, subject: 'idp|a-4711', role: 'patient', systemId: null, action: 'observations.read', patientKey: 'p-1',
    resource: null, ip: '127.0.0.1', requestId: `r-${n}`, outcome: 'error', status: 503, reason: 'storage_unavailable', ...extra,
  });
  const stream = 'audit-2026-12-06-0';

  it('is kept and hashed where recorded: flipping or dropping it breaks the chain; an entry without it hashes as before', () => {
    const events = chain(genesisHash(stream), [entry(1, { selfAccess: true }), entry(2, { selfAccess: false }), entry(3)]);
    expect(events.map((e) => e.selfAccess)).toEqual([true, false, undefined]);
    expect('selfAccess' in events[2]!).toBe(false);
    expect(verifyChain(stream, events).breaks).toEqual([]);
    const { selfAccess: _dropped, ...without } = events[0]!;
    expect(verifyChain(stream, [{ ...events[0]!, selfAccess: false }, ...events.slice(1)]).breaks).toEqual([{ streamName: stream, index: 0, reason: 'hash_mismatch' }]);
    expect(verifyChain(stream, [without, ...events.slice(1)]).breaks).toEqual([{ streamName: stream, index: 0, reason: 'hash_mismatch' }]);
    // The hash of an entry of a build before selfAccess: the twelve fields, as it always was.
    const old = entry(3);
    const legacy = createHash('sha256').update(events[1]!.hash, 'utf8').update('\n')
      .update(JSON.stringify([old.at, old.subject, old.role, old.systemId, old.action, old.patientKey, old.resource, old.ip, old.requestId, old.outcome, old.status, old.reason]), 'utf8').digest('hex');
    expect(events[2]!.hash).toBe(legacy);
  });
});
