import { UnavailableError } from '../domain/shared/errors';

/**
 * The log of a background loop that retries (a projection, a publisher, the deadlines): while the same failure
 * repeats, one line per 10 s with the count of those not logged, and one line when it works again. A database
 * that is down for 10 minutes failed every projection twice a second, ~5,000 lines, burying everything else.
 *
 *   const failures = new RepeatedFailureLog(logger, { failed: 'registry projection failed; retrying', recovered: 'registry projection works again' });
 *   failures.failed(error);   // logged, or counted when the same failure was logged less than 10 s ago
 *   failures.succeeded();     // one line if it was failing (with the count not logged), else nothing
 *
 * "The same failure" is the same error code (or, without one, the same name and message): another failure is
 * logged at once. A named outage (UnavailableError: a database that cannot be reached, a full disk) is a warning with
 * its code and cause and no stack; anything else an error with its stack.
 */
export type FailureLogger = { warn(obj: object, msg: string): void; error(obj: object, msg: string): void; info?(obj: object, msg: string): void };

export const REPEATED_FAILURE_LOG_EVERY_MS = 10_000;

export class RepeatedFailureLog {
  private failingSince: number | null = null;
  private loggedAt = 0;
  private lastKind = '';
  private notLogged = 0;
  private readonly everyMs: number;
  private readonly now: () => number;

  constructor(
    private readonly logger: FailureLogger | undefined,
    private readonly messages: Readonly<{ failed: string; recovered: string }>,
    options: Readonly<{ everyMs?: number; now?: () => number }> = {},
  ) {
    this.everyMs = options.everyMs ?? REPEATED_FAILURE_LOG_EVERY_MS;
    this.now = options.now ?? Date.now;
  }

  failed(error: unknown): void {
    const now = this.now();
    const kind = kindOf(error);
    if (this.failingSince !== null && kind === this.lastKind && now - this.loggedAt < this.everyMs) {
      this.notLogged++;
      return;
    }
    const notLogged = this.notLogged > 0 ? { notLoggedSince: this.notLogged } : {};
    // A named outage (the database cannot be reached, the disk is full): a warning with its code and cause, where it
    // points, and no stack, which says nothing about it (a database that was down gave one stack per loop every 10 s).
    if (error instanceof UnavailableError) this.logger?.warn({ code: error.code, ...causeOf(error), ...notLogged }, this.messages.failed);
    else this.logger?.error({ err: error, ...notLogged }, this.messages.failed);
    this.failingSince ??= now;
    this.loggedAt = now;
    this.lastKind = kind;
    this.notLogged = 0;
  }

  succeeded(): void {
    if (this.failingSince === null) return;
    const fields = { failedForMs: this.now() - this.failingSince, ...(this.notLogged > 0 ? { notLoggedSince: this.notLogged } : {}) };
    if (this.logger?.info) this.logger.info(fields, this.messages.recovered);
    else this.logger?.warn(fields, this.messages.recovered);
    this.failingSince = null;
    this.notLogged = 0;
  }
}

const kindOf = (error: unknown): string => {
  const e = error as { code?: unknown; name?: unknown; message?: unknown } | null;
  if (typeof e?.code === 'string' || typeof e?.code === 'number') return `code:${String(e.code)}`;
  return `${String(e?.name)}:${String(e?.message)}`;
};

/** What the driver said of an outage, without its message: its code, and the address and port it failed to reach. */
const causeOf = (error: UnavailableError): Record<string, unknown> => {
  const cause = (error as { cause?: { code?: unknown; address?: unknown; port?: unknown } }).cause;
  if (cause === null || typeof cause !== 'object') return {};
  return {
    ...(typeof cause.code === 'string' ? { cause: cause.code } : {}),
    ...(typeof cause.address === 'string' ? { address: cause.address } : {}),
    ...(typeof cause.port === 'number' ? { port: cause.port } : {}),
  };
};
