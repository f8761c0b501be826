/**
 * Binary a sender set (an AMQP property or id of type binary), as text for people: its text when it is well-formed
 * UTF-8, so what it says is checked and redacted as text (as hex, a binary "251248-1234" reached operators
 * unredacted); else hex.
 */
export const binaryShown = (v: Uint8Array): string => {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(v);
  } catch {
    return Buffer.from(v).toString('hex');
  }
};
