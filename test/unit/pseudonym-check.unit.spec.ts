// One pseudonym secret per store: the first process records its fingerprint, a later one with another is refused.
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { HmacPatientKeys } from '../../src/adapters/system/hmac-patient-keys';
import { checkPseudonymSecret, PSEUDONYM_CHECK_STREAM, PseudonymSecretMismatchError, recordedPseudonymFingerprint } from '../../src/application/pseudonym-check';
import { parseCpr } from '../../src/domain/monitoring/cpr';

const AT = '2026-11-30T12:00:00.000Z';
const keysOf = (byte: string) => new HmacPatientKeys(Buffer.from(byte.repeat(32), 'hex'));

describe('the pseudonym secret check', () => {
  it('fingerprints tell secrets apart, are stable, and are not a patient key', () => {
    const a = keysOf('aa');
    expect(a.fingerprint()).toBe(keysOf('aa').fingerprint());
    expect(a.fingerprint()).not.toBe(keysOf('ab').fingerprint());
    expect(a.fingerprint()).toMatch(/^[0-9a-f]{32}$/);
    expect(a.keyFor(parseCpr('251248-1234'))).not.toContain(a.fingerprint());
  });

  it('records the first fingerprint, accepts it again and refuses another', async () => {
    const store = new InMemoryEventStore();
    expect(await recordedPseudonymFingerprint(store)).toBeNull();
    expect(await checkPseudonymSecret(store, keysOf('aa').fingerprint(), AT)).toBe('recorded');
    expect(await checkPseudonymSecret(store, keysOf('aa').fingerprint(), AT)).toBe('matches');
    await expect(checkPseudonymSecret(store, keysOf('ab').fingerprint(), AT)).rejects.toBeInstanceOf(PseudonymSecretMismatchError);
    const { events } = await store.readStream(PSEUDONYM_CHECK_STREAM);
    expect(events).toHaveLength(1);
    expect(events[0]!.data).toEqual({ fingerprint: keysOf('aa').fingerprint(), recordedAt: AT });
  });

  it('two processes starting at once: with the same secret both go on, with different ones exactly one does', async () => {
    const same = new InMemoryEventStore();
    const both = await Promise.all([checkPseudonymSecret(same, keysOf('aa').fingerprint(), AT), checkPseudonymSecret(same, keysOf('aa').fingerprint(), AT)]);
    expect(both.sort()).toEqual(['matches', 'recorded']);

    const different = new InMemoryEventStore();
    const outcomes = await Promise.allSettled([checkPseudonymSecret(different, keysOf('aa').fingerprint(), AT), checkPseudonymSecret(different, keysOf('ab').fingerprint(), AT)]);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    expect(refused).toHaveLength(1);
    expect(refused[0]!.reason).toBeInstanceOf(PseudonymSecretMismatchError);
    expect((await different.readStream(PSEUDONYM_CHECK_STREAM)).events).toHaveLength(1);
  });
});
