/**
 * The exit codes of `rts`, so a script (or the meter's own wrapper) can tell a typing error from a refused
 * reading from a hub that is down, and retry only what is worth retrying.
 */
export const EXIT = {
  /** Done. */
  ok: 0,
  /** Something unexpected inside the CLI itself (a bug). */
  internal: 1,
  /** Bad or missing flags, found before any request was sent. */
  usage: 2,
  /** The hub answered 4xx: it refused the input as sent; sending it again will not help. */
  refused: 3,
  /** The hub could not be reached (connection refused, DNS, timeout), also after one retry where time was left. */
  unreachable: 4,
  /** The hub answered 5xx (or something that is not its API): a fault on the hub's side. */
  serverError: 5,
  /** backup/restore: a file was missing, damaged or could not be written; nothing half-written is left. */
  files: 6,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_CODES_HELP = `Exit codes:
  0  ok
  2  usage error: bad or missing flags (checked before anything is sent)
  3  the hub refused the input (4xx); its problem and field errors are shown
  4  cannot reach the hub (not running, wrong URL, timeout), after one retry
     where time is left;
     also a 4xx that is not the hub's (something else answered)
  5  the hub failed (5xx), stayed too busy (429, after waiting twice) or did
     not answer as its API does: send it again later (an upload with the
     --id it prints: it may be stored)
  6  backup/restore: a file missing, damaged or not writable (nothing is left
     half-written)
  1  unexpected error inside rts itself`;

/** backup and restore talk to no hub: only the codes they return (the full list named 3-5, which they never do). */
export const BACKUP_EXIT_CODES_HELP = `Exit codes:
  0  ok
  2  usage error: bad or missing flags
  6  a file missing, damaged or not writable (nothing is left half-written)
  1  unexpected error inside rts itself`;
