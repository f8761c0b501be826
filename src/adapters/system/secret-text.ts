/**
 * What a secret file the hub writes holds (pseudonym.secret, auth.secret): at least 32 hex digits, two per byte, with
 * white space around allowed. Why another text is not one, or null: the start (bootstrap/secret.ts) and `rts backup`
 * ask the same, so a backup of an empty secret, which no restore could start from, is refused when it is taken.
 */
export const secretTextProblem = (text: string): string | null => {
  const trimmed = text.trim();
  if (trimmed.length === 0) return 'is empty';
  return /^(?:[0-9a-fA-F]{2}){16,}$/.test(trimmed) ? null : 'is not a secret the hub wrote (at least 32 hex digits)';
};
