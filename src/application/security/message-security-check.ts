import { ExpectedVersionConflictError, type EventStore } from '../ports/event-store';
import { uuidV5 } from '../ids';

/**
 * One message security mode per store, among the hub processes that talk to a broker. The processes on one store
 * consume one uplink queue and each publishes the downlink, so a process with RTS_MESSAGE_SECURITY=off beside
 * others with jose would dead-letter every signed message it takes (it reads JSON) and, worse, publish its copies
 * of the downlink (consultations carry patient data) in clear over the broker. So each process that messages
 * records its mode in the store at start, and one whose mode differs from the last recorded refuses to start.
 * A deliberate switch of the whole deployment (stop every hub, start them with the new mode) is accepted once
 * with `acceptChange`; the processes started after it find the new mode recorded.
 */
export const MESSAGE_SECURITY_STREAM = 'hub-message-security';
export const MESSAGE_SECURITY_IN_USE = 'MessageSecurityInUse';

export type MessageSecurityMode = 'jose' | 'off';

export class MessageSecurityMismatchError extends Error {
  readonly code = 'message_security_mismatch';
  constructor(readonly recorded: MessageSecurityMode) {
    super(`the store's hub processes message with security ${recorded}`);
    this.name = 'MessageSecurityMismatchError';
  }
}

const modeOf = (value: unknown): MessageSecurityMode | null => (value === 'jose' || value === 'off' ? value : null);

/** The mode last recorded in the store and the stream's version; null when none was recorded yet. */
export const recordedMessageSecurity = async (store: EventStore): Promise<{ mode: MessageSecurityMode | null; version: bigint | null }> => {
  const { state, currentVersion } = await store.aggregateStream<MessageSecurityMode | null>(MESSAGE_SECURITY_STREAM, {
    initialState: () => null,
    evolve: (last, event) => (event.type === MESSAGE_SECURITY_IN_USE ? (modeOf(event.data['mode']) ?? last) : last),
  });
  return { mode: state, version: currentVersion };
};

/**
 * 'recorded' (the store had none), 'matches', or 'changed' (another mode and `acceptChange`: recorded as the mode
 * now); throws MessageSecurityMismatchError for another mode without `acceptChange`.
 */
export const checkMessageSecurity = async (
  store: EventStore,
  mode: MessageSecurityMode,
  recordedAt: string,
  options: { acceptChange?: boolean } = {},
): Promise<'recorded' | 'matches' | 'changed'> => {
  for (let attempt = 0; ; attempt++) {
    const { mode: last, version } = await recordedMessageSecurity(store);
    if (last === mode) return 'matches';
    if (last !== null && !options.acceptChange) throw new MessageSecurityMismatchError(last);
    const next = version === null ? 0n : version + 1n;
    try {
      const result = await store.appendToStream(
        MESSAGE_SECURITY_STREAM,
        [{ id: uuidV5(`message-security/${next}/${mode}`), type: MESSAGE_SECURITY_IN_USE, data: { mode, recordedAt } }],
        { expectedVersion: version ?? 'no_stream' },
      );
      return result.idempotent ? 'matches' : last === null ? 'recorded' : 'changed';
    } catch (error) {
      // Another process recorded meanwhile: judge ours against what it recorded.
      if (!(error instanceof ExpectedVersionConflictError) || attempt > 2) throw error;
    }
  }
};
