import type { EventStore } from '../ports/event-store';
import { checkRecordedSetting, recordedSetting, type RecordedSetting } from '../recorded-setting';
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

const messageSecuritySetting = (acceptChange: boolean): RecordedSetting<MessageSecurityMode, 'changed'> => ({
  stream: MESSAGE_SECURITY_STREAM,
  type: MESSAGE_SECURITY_IN_USE,
  parse: (data) => modeOf(data['mode']),
  data: (mode) => ({ mode }),
  eventId: (mode, version) => uuidV5(`message-security/${version}/${mode}`),
  same: (last, mine) => last === mine,
  judge: (last) => {
    if (!acceptChange) throw new MessageSecurityMismatchError(last);
    return 'changed';
  },
});

/** The mode last recorded in the store and the stream's version; null when none was recorded yet. */
export const recordedMessageSecurity = async (store: EventStore): Promise<{ mode: MessageSecurityMode | null; version: bigint | null }> => {
  const { value, version } = await recordedSetting(store, messageSecuritySetting(false));
  return { mode: value, version };
};

/**
 * 'recorded' (the store had none), 'matches', or 'changed' (another mode and `acceptChange`: recorded as the mode
 * now); throws MessageSecurityMismatchError for another mode without `acceptChange`.
 */
export const checkMessageSecurity = (
  store: EventStore,
  mode: MessageSecurityMode,
  recordedAt: string,
  options: { acceptChange?: boolean } = {},
): Promise<'recorded' | 'matches' | 'changed'> => checkRecordedSetting(store, messageSecuritySetting(options.acceptChange ?? false), mode, recordedAt);
