/**
 * What a secret file the hub writes holds (pseudonym.secret, auth.secret): at least 32 hex digits (auth.secret 64), two per byte, with
 * white space around allowed. Why another text is not one, or null: the start (bootstrap/secret.ts) and `rts backup`
 * ask the same, so a backup of an empty secret, which no restore could start from, is refused when it is taken.
 */
export const secretTextProblem = (text: string, minHexDigits = 32): string | null => {
  const trimmed = text.trim();
  if (trimmed.length === 0) return 'is empty';
  return trimmed.length >= minHexDigits && /^(?:[0-9a-fA-F]{2})+$/.test(trimmed) ? null : `is not a secret the hub wrote (at least ${minHexDigits} hex digits)`;
};

/** auth.secret: 64 hex digits at least, as RTS_AUTH_JWT_SECRET asks (the hub writes 64); a file cut short is not one. */
export const AUTH_SECRET_MIN_HEX_DIGITS = 64;
