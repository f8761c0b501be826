import { authorize, concernsPatientData, type Principal } from '../../src/application/access/policy';
import { chain, genesisHash, verifyChain, auditStreamOf, type AuditEntry } from '../../src/application/audit/audit-chain';
import { PatientCipher, openWith, sealWith } from '../../src/adapters/crypto/patient-cipher';
import { InMemoryKeyStore } from '../../src/adapters/crypto/key-stores';
import { RateLimiter } from '../../src/adapters/http/rate-limiter';

const patient: Principal = { subject: 'p1', role: 'patient', patientKey: 'pA', via: 'jwt' };
const clinician: Principal = { subject: 'c1', role: 'clinician', systemId: 'aarhus', via: 'jwt' };
const system: Principal = { subject: 's1', role: 'system', systemId: 'aarhus', via: 'api_key' };
const operator: Principal = { subject: 'o1', role: 'operator', via: 'jwt' };
const scope = { uniqueIds: new Set(['2.25.1']), patientKeys: new Set(['pB']) };

describe('access policy', () => {
  it('lets a patient read and write only their own data', () => {
    expect(authorize(patient, { kind: 'observations.read', patientKey: 'pA' }).allowed).toBe(true);
    expect(authorize(patient, { kind: 'observations.write', patientKey: 'pA' }).allowed).toBe(true);
    expect(authorize(patient, { kind: 'observations.read', patientKey: 'pB' })).toEqual({ allowed: false, reason: 'not_own_patient_data' });
    expect(authorize(patient, { kind: 'document.correct', patientKey: 'pB', uniqueId: 'x' }).allowed).toBe(false);
    expect(authorize({ ...patient, patientKey: undefined } as Principal, { kind: 'observations.read', patientKey: 'pA' }).allowed).toBe(false);
  });
  it('lets a clinician read the patients of consultations offered to their system, and nothing else', () => {
    expect(authorize(clinician, { kind: 'observations.read', patientKey: 'pB' }, scope).allowed).toBe(true);
    expect(authorize(clinician, { kind: 'document.read', patientKey: 'pZ', uniqueId: '2.25.1' }, scope).allowed).toBe(true);
    expect(authorize(clinician, { kind: 'observations.read', patientKey: 'pA' }, scope)).toEqual({ allowed: false, reason: 'no_consultation' });
    expect(authorize(clinician, { kind: 'observations.read', patientKey: 'pB' }, null).allowed).toBe(false);
    expect(authorize(clinician, { kind: 'observations.write', patientKey: 'pB' }, scope).allowed).toBe(false);
    // Of those patients' documents only the attached ones (the README's rule): another, or the original a correction
    // replaced (values no answer of readings holds), was read as "the patient's".
    expect(authorize(clinician, { kind: 'document.read', patientKey: 'pB', uniqueId: '2.25.99' }, scope)).toEqual({ allowed: false, reason: 'no_consultation' });
  });
  it('lets a system act only for itself', () => {
    expect(authorize(system, { kind: 'consultation.act', systemId: 'aarhus' }).allowed).toBe(true);
    expect(authorize(system, { kind: 'consultation.act', systemId: 'odense' })).toEqual({ allowed: false, reason: 'other_system' });
    expect(authorize(system, { kind: 'consultation.read', systemIds: ['odense', 'aarhus'] }).allowed).toBe(true);
    expect(authorize(system, { kind: 'observations.read', patientKey: 'pA' }).allowed).toBe(false);
    expect(authorize(system, { kind: 'systems.manage' }).allowed).toBe(false);
  });
  it('lets an operator manage the hub but not read patient data', () => {
    for (const kind of ['systems.manage', 'dead_letters.manage', 'dead_letters.read', 'dead_letters.discard', 'patient.erase', 'erasures.list', 'audit.read', 'other'] as const) expect(authorize(operator, { kind }).allowed).toBe(true);
    // A dead letter's discard is the operators' as its replay is, and audited whatever the outcome (the replay only when refused).
    for (const who of [patient, clinician, system]) expect(authorize(who, { kind: 'dead_letters.discard' })).toEqual({ allowed: false, reason: 'operator_only' });
    expect(concernsPatientData({ kind: 'dead_letters.discard' })).toBe(true);
    // A dead letter's body may hold patient data: its read is operators' only, and audited whatever its outcome.
    for (const who of [patient, clinician, system]) expect(authorize(who, { kind: 'dead_letters.read' })).toEqual({ allowed: false, reason: 'operator_only' });
    expect(concernsPatientData({ kind: 'dead_letters.read' })).toBe(true);
    expect(concernsPatientData({ kind: 'dead_letters.manage' })).toBe(false);
    // Where a consultation is: the operators', and audited (who asked whom about a case, and when).
    expect(authorize(operator, { kind: 'consultation.trace' }).allowed).toBe(true);
    for (const who of [patient, clinician, system]) expect(authorize(who, { kind: 'consultation.trace' })).toEqual({ allowed: false, reason: 'operator_only' });
    expect(concernsPatientData({ kind: 'consultation.trace' })).toBe(true);
    expect(authorize(operator, { kind: 'observations.read', patientKey: 'pA' }).allowed).toBe(false);
    expect(authorize(operator, { kind: 'consultation.act', systemId: 'aarhus' }).allowed).toBe(false);
    expect(authorize(patient, { kind: 'audit.read' }).allowed).toBe(false);
  });
  it("lets a patient export their own data, and an operator (the data protection officer) any patient's: no one else", () => {
    const action = { kind: 'patient.export', patientKey: 'pA' } as const;
    expect(authorize(patient, action).allowed).toBe(true);
    expect(authorize(operator, action).allowed).toBe(true);
    expect(authorize(patient, { ...action, patientKey: 'pB' })).toEqual({ allowed: false, reason: 'not_own_patient_data' });
    expect(authorize({ ...patient, patientKey: undefined } as Principal, action).allowed).toBe(false);
    expect(authorize(clinician, action, { uniqueIds: new Set(), patientKeys: new Set(['pA']) })).toEqual({ allowed: false, reason: 'role_may_not_export_patient_data' });
    expect(authorize(system, action)).toEqual({ allowed: false, reason: 'role_may_not_export_patient_data' });
  });
});

const entry = (n: number, over: Partial<AuditEntry> = {}): AuditEntry => ({
  at: `2024-05-01T10:00:0${n}.000Z`, subject: 'p1', role: 'patient', systemId: null, action: 'observations.read', patientKey: 'pA',
  resource: null, ip: '127.0.0.1', requestId: `r${n}`, outcome: 'allowed', status: 200, reason: null, ...over,
});

describe('access policy: system message keys', () => {
  const system = (systemId: string): Principal => ({ subject: `system:${systemId}`, role: 'system', systemId, via: 'api_key' });
  it('lets an operator or the system itself register keys, and no one else', () => {
    const action = { kind: 'system.keys', systemId: 'city-a' } as const;
    expect(authorize({ subject: 'op', role: 'operator', via: 'jwt' } as Principal, action).allowed).toBe(true);
    expect(authorize(system('city-a'), action).allowed).toBe(true);
    expect(authorize(system('city-b'), action)).toEqual({ allowed: false, reason: 'other_system' });
    expect(authorize({ subject: 'c', role: 'clinician', systemId: 'city-a', via: 'jwt' } as Principal, action)).toEqual({ allowed: false, reason: 'role_may_not_manage_keys' });
  });
});

describe('audit hash chain', () => {
  const stream = auditStreamOf(entry(1));
  const linked = chain(genesisHash(stream), [entry(1), entry(2), entry(3)]);
  it('names the chain by day and partition and links every event to the previous one', () => {
    expect(stream).toMatch(/^audit-2024-05-01-[0-7]$/);
    expect(linked[1]!.prevHash).toBe(linked[0]!.hash);
    expect(verifyChain(stream, linked)).toMatchObject({ events: 3, breaks: [], headHash: linked[2]!.hash });
  });
  it('finds a changed, a removed and a reordered event', () => {
    expect(verifyChain(stream, [linked[0]!, { ...linked[1]!, outcome: 'denied' }, linked[2]!]).breaks).toEqual([{ streamName: stream, index: 1, reason: 'hash_mismatch' }]);
    expect(verifyChain(stream, [linked[0]!, linked[2]!]).breaks).toEqual([{ streamName: stream, index: 1, reason: 'prev_hash_mismatch' }]);
    expect(verifyChain(stream, [linked[1]!, linked[0]!, linked[2]!]).breaks.length).toBeGreaterThan(0);
    expect(verifyChain('audit-2024-05-01-9', linked).breaks[0]).toMatchObject({ index: 0, reason: 'prev_hash_mismatch' });
  });
  it('finds a chain cut back at its tail only with an anchor kept from before', () => {
    const cut = linked.slice(0, 2);
    expect(verifyChain(stream, cut).breaks).toEqual([]); // whole in itself: the cut does not show
    expect(verifyChain(stream, cut, linked[2]!.hash).breaks).toEqual([{ streamName: stream, index: 2, reason: 'anchor_missing' }]);
    expect(verifyChain(stream, [], linked[0]!.hash).breaks).toEqual([{ streamName: stream, index: 0, reason: 'anchor_missing' }]);
    expect(verifyChain(stream, linked, linked[1]!.hash).breaks).toEqual([]); // an older anchor is still in the chain
    expect(verifyChain(stream, linked, linked[2]!.hash).breaks).toEqual([]);
  });
});

describe('patient data envelope (AES-256-GCM)', () => {
  const key = Buffer.alloc(32, 7);
  it('opens only with the same key and associated data', () => {
    const sealed = sealWith(key, '<ClinicalDocument>251248-1234</ClinicalDocument>', Buffer.from('pA|document/1'));
    expect(sealed).toMatch(/^rts-sealed:v1:/);
    expect(sealed).not.toContain('251248');
    expect(openWith(key, sealed, Buffer.from('pA|document/1'))).toContain('251248-1234');
    expect(() => openWith(key, sealed, Buffer.from('pA|document/2'))).toThrow();
    expect(() => openWith(Buffer.alloc(32, 8), sealed, Buffer.from('pA|document/1'))).toThrow();
    // One bit of the ciphertext flipped (replacing its last characters could leave it as it was: the IV is random).
    const [head, ct, tag] = sealed.split('.');
    const tampered = Buffer.from(ct!, 'base64url');
    tampered[0] = tampered[0]! ^ 1;
    expect(() => openWith(key, `${head}.${tampered.toString('base64url')}.${tag}`, Buffer.from('pA|document/1'))).toThrow();
  });
  it('keeps keys in a bounded cache, and after erasure opens nothing and seals nothing', async () => {
    const keys = new InMemoryKeyStore();
    const cipher = new PatientCipher({ keys, maxCached: 2 });
    const sealed = await cipher.seal('pA', 'secret', 'd1');
    await cipher.seal('pB', 'x', 'd'); await cipher.seal('pC', 'x', 'd');
    expect(cipher.cachedKeys).toBe(2);
    expect(await cipher.open('pA', sealed, 'd1')).toBe('secret'); // reloaded from the store
    expect(await cipher.open('pA', 'plain old content', 'd1')).toBe('plain old content');
    await cipher.erase('pA');
    expect(await cipher.open('pA', sealed, 'd1')).toBeNull();
    expect(await cipher.isErased('pA')).toBe(true);
    await expect(cipher.seal('pA', 'again', 'd2')).rejects.toMatchObject({ code: 'patient_erased' });
    expect(await new PatientCipher({ keys }).open('pA', sealed, 'd1')).toBeNull(); // another process, same store
  });
  it('isErased asks the key store, not the key cache: an erasure by another process shows at once', async () => {
    const keys = new InMemoryKeyStore();
    const here = new PatientCipher({ keys, ttlMs: 60_000 });
    const sealed = await here.seal('pA', 'secret', 'd1'); // pA's live key is cached here for a minute
    expect(await here.isErased('pA')).toBe(false);
    expect(await here.isErased('pNever')).toBe(false);
    await new PatientCipher({ keys }).erase('pA'); // another hub process on the same key store
    expect(await here.isErased('pA')).toBe(true);
    // What it learnt replaces the cached key: nothing opens or is sealed with it any more.
    expect(await here.open('pA', sealed, 'd1')).toBeNull();
    await expect(here.seal('pA', 'again', 'd2')).rejects.toMatchObject({ code: 'patient_erased' });
  });
  it('never repeats a nonce: 2,000 envelopes (the nonce pool refilled five times) all differ and all open', () => {
    const associated = Buffer.from('pA|document/1');
    const sealed = Array.from({ length: 2000 }, () => sealWith(key, 'same plaintext', associated));
    const nonces = sealed.map((s) => s.slice('rts-sealed:v1:'.length).split('.')[0]);
    expect(new Set(nonces).size).toBe(2000);
    expect(new Set(sealed).size).toBe(2000);
    for (const s of sealed) expect(openWith(key, s, associated)).toBe('same plaintext');
  });
  it('openCached opens without waiting only with a key in memory and not expired; erased stays erased', async () => {
    const keys = new InMemoryKeyStore();
    let now = 0;
    const cipher = new PatientCipher({ keys, ttlMs: 1000, now: () => now });
    const sealed = await cipher.seal('pA', 'secret', 'd1');
    expect(cipher.openCached('pA', sealed, 'd1')).toBe('secret');
    expect(cipher.openCached('pA', 'plain old content', 'd1')).toBe('plain old content');
    expect(new PatientCipher({ keys }).openCached('pA', sealed, 'd1')).toBeUndefined(); // key only in the store
    now = 1000; // expired: must be fetched again (another process may have erased it)
    expect(cipher.openCached('pA', sealed, 'd1')).toBeUndefined();
    expect(await cipher.open('pA', sealed, 'd1')).toBe('secret'); // fetched and cached again
    expect(cipher.openCached('pA', sealed, 'd1')).toBe('secret');
    expect(() => cipher.openCached('pA', sealed, 'd2')).toThrow(); // another place: the AEAD refuses
    await cipher.erase('pA');
    now = 10_000;
    expect(cipher.openCached('pA', sealed, 'd1')).toBeNull();
  });
  it('hands a just-sealed envelope its plaintext once, for its own patient and place only, and never after erasure', async () => {
    const keys = new InMemoryKeyStore();
    const cipher = new PatientCipher({ keys, maxJustSealed: 2 });
    const a = await cipher.seal('pA', 'reading A', 'document/1');
    expect(cipher.unopenedSeals).toBe(1);
    // Another place or another patient does not get it: the AEAD decides, and refuses.
    expect(() => cipher.openCached('pA', a, 'document/2')).toThrow();
    await cipher.seal('pB', 'x', 'document/9');
    expect(() => cipher.openCached('pB', a, 'document/1')).toThrow();
    expect(cipher.unopenedSeals).toBe(2);
    // Found by its IV, taken only by the very envelope: another body under the same IV is the AEAD's to refuse.
    const [iv, body, tag] = a.slice('rts-sealed:v1:'.length).split('.') as [string, string, string];
    const altered = `rts-sealed:v1:${iv}.${body.startsWith('A') ? 'B' : 'A'}${body.slice(1)}.${tag}`;
    expect(() => cipher.openCached('pA', altered, 'document/1')).toThrow();
    expect(cipher.unopenedSeals).toBe(2);
    expect(cipher.openCached('pA', a, 'document/1')).toBe('reading A');
    expect(cipher.unopenedSeals).toBe(1); // used once
    expect(cipher.openCached('pA', a, 'document/1')).toBe('reading A'); // then opened with the key as always
    // Bounded: the oldest goes first.
    const b = await cipher.seal('pA', 'reading B', 'document/2');
    await cipher.seal('pC', 'y', 'document/3');
    expect(cipher.unopenedSeals).toBe(2);
    expect(await cipher.open('pA', b, 'document/2')).toBe('reading B');
    // Erasure drops the patient's entries at once, and opening stays refused.
    const c = await cipher.seal('pA', 'reading C', 'document/4');
    expect(cipher.unopenedSeals).toBe(2);
    await cipher.erase('pA');
    expect(cipher.unopenedSeals).toBe(1);
    expect(cipher.openCached('pA', c, 'document/4')).toBeNull();
    expect(await cipher.open('pA', c, 'document/4')).toBeNull();
    // Held no longer than a key is cached without a fresh look-up.
    let now = 0;
    const timed = new PatientCipher({ keys, ttlMs: 1000, now: () => now });
    const d = await timed.seal('pE', 'reading D', 'document/5');
    now = 999;
    await timed.seal('pE', 'reading E', 'document/6');
    expect(timed.unopenedSeals).toBe(2);
    now = 1500; // d is past its time: a new seal drops it, e stays
    await timed.seal('pE', 'reading F', 'document/7');
    expect(timed.unopenedSeals).toBe(2);
    expect(timed.openCached('pE', d, 'document/5')).toBe('reading D'); // decrypted with the key, as always
    expect(timed.unopenedSeals).toBe(2); // e and f are still held; d was not
    // Off: nothing held.
    const off = new PatientCipher({ keys, maxJustSealed: 0 });
    expect(off.openCached('pD', await off.seal('pD', 'z', 'd'), 'd')).toBe('z');
    expect(off.unopenedSeals).toBe(0);
  });
});

describe('rate limiter (token bucket)', () => {
  it('allows a burst, then refuses with Retry-After until tokens refill', () => {
    let now = 0;
    const limiter = new RateLimiter({ perSecond: 2, burst: 3, now: () => now });
    expect([1, 2, 3].map(() => limiter.take('a').allowed)).toEqual([true, true, true]);
    expect(limiter.take('a')).toEqual({ allowed: false, retryAfterSeconds: 1 });
    expect(limiter.take('b').allowed).toBe(true);
    now = 500;
    expect(limiter.take('a').allowed).toBe(true);
    expect(limiter.take('a').allowed).toBe(false);
  });

  it('takes nothing from a bucket when the clock goes back (before: a step back of N s locked callers out ~N s)', () => {
    let now = 1_000_000;
    const limiter = new RateLimiter({ perSecond: 50, burst: 100, now: () => now });
    expect(limiter.take('a').allowed).toBe(true);
    now -= 300_000;
    expect(limiter.take('a')).toEqual({ allowed: true });
    now += 20;
    expect(limiter.take('a')).toEqual({ allowed: true });
  });

  it('runs on the monotonic clock by default, whatever the wall clock does', () => {
    const limiter = new RateLimiter({ perSecond: 50, burst: 2 });
    const wall = jest.spyOn(Date, 'now');
    try {
      wall.mockReturnValue(2_000_000_000_000);
      expect(limiter.take('a').allowed).toBe(true);
      wall.mockReturnValue(2_000_000_000_000 - 8 * 3_600_000);
      expect(limiter.take('a').allowed).toBe(true);
    } finally {
      wall.mockRestore();
    }
  });
});
