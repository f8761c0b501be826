/**
 * A small error hierarchy. Each error has a stable `code`; the edge (HTTP, AMQP, CLI) chooses what it becomes
 * (a problem+json type and status, a dead-letter reason, an exit code). Messages are for humans and must never
 * contain personal data (no patient identifiers): they end up in logs.
 */
export type ErrorKind = 'validation' | 'not_found' | 'conflict' | 'forbidden' | 'unavailable';

export abstract class RtsError extends Error {
  abstract readonly kind: ErrorKind;
  constructor(
    readonly code: string,
    message: string,
    /** Field-level detail, safe to show to the caller (no personal data). */
    readonly details: readonly { readonly path: string; readonly message: string }[] = [],
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Input that can never be accepted as given: bad shape, implausible values, future times. */
export class ValidationError extends RtsError {
  readonly kind = 'validation' as const;
}

/** The thing asked for does not exist (unknown document, unknown patient). */
export class NotFoundError extends RtsError {
  readonly kind = 'not_found' as const;
}

/** The request contradicts the current state (a deprecated document corrected again, an id reused). */
export class ConflictError extends RtsError {
  readonly kind = 'conflict' as const;
}

/** The caller may not do this to this resource (an expert changed by a system that is not its home system). */
export class ForbiddenError extends RtsError {
  readonly kind = 'forbidden' as const;
}

/** Not now, maybe later: the request was fine but a part it needs cannot serve it (retry later). */
export class UnavailableError extends RtsError {
  readonly kind = 'unavailable' as const;
}
