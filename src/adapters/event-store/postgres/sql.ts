/** Quotes an SQL identifier (schema, table, channel) for PostgreSQL: wraps in double quotes, doubles inner ones. */
export function quoteIdent(name: string): string {
  if (name.length === 0 || name.length > 63 || name.includes('\0')) {
    throw new Error(`invalid PostgreSQL identifier of length ${name.length}`);
  }
  return `"${name.replace(/"/g, '""')}"`;
}

/** SQLSTATE of a unique constraint violation. */
export const UNIQUE_VIOLATION = '23505';

export function isPgError(error: unknown): error is Error & { code: string; constraint?: string } {
  return error instanceof Error && typeof (error as { code?: unknown }).code === 'string';
}
