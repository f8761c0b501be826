// One message security mode per store among the hub processes that talk to a broker.
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { checkMessageSecurity, MESSAGE_SECURITY_STREAM, MessageSecurityMismatchError, recordedMessageSecurity } from '../../src/application/security/message-security-check';

const AT = '2026-12-01T12:00:00.000Z';

describe('the message security mode check', () => {
  it('records the first mode, accepts it again, refuses the other, and takes a deliberate switch once', async () => {
    const store = new InMemoryEventStore();
    expect((await recordedMessageSecurity(store)).mode).toBeNull();
    expect(await checkMessageSecurity(store, 'jose', AT)).toBe('recorded');
    expect(await checkMessageSecurity(store, 'jose', AT)).toBe('matches');
    const refused = checkMessageSecurity(store, 'off', AT);
    await expect(refused).rejects.toBeInstanceOf(MessageSecurityMismatchError);
    await expect(refused).rejects.toMatchObject({ recorded: 'jose' });
    expect(await checkMessageSecurity(store, 'off', AT, { acceptChange: true })).toBe('changed');
    expect(await checkMessageSecurity(store, 'off', AT)).toBe('matches');
    await expect(checkMessageSecurity(store, 'jose', AT)).rejects.toBeInstanceOf(MessageSecurityMismatchError);
    const { events } = await store.readStream(MESSAGE_SECURITY_STREAM);
    expect(events.map((e) => e.data)).toEqual([{ mode: 'jose', recordedAt: AT }, { mode: 'off', recordedAt: AT }]);
  });

  it('processes starting at once: the same mode is recorded once, different modes let exactly one go on', async () => {
    const same = new InMemoryEventStore();
    expect((await Promise.all([checkMessageSecurity(same, 'jose', AT), checkMessageSecurity(same, 'jose', AT)])).sort()).toEqual(['matches', 'recorded']);
    expect((await same.readStream(MESSAGE_SECURITY_STREAM)).events).toHaveLength(1);

    const different = new InMemoryEventStore();
    const outcomes = await Promise.allSettled([checkMessageSecurity(different, 'jose', AT), checkMessageSecurity(different, 'off', AT)]);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    expect(outcomes.filter((o) => o.status === 'rejected').map((o) => (o as PromiseRejectedResult).reason)).toEqual([expect.any(MessageSecurityMismatchError)]);
  });
});
