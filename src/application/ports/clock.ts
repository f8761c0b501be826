import type { DateTime } from 'luxon';

/** Time enters the core only through this port; commands carry `now` into the domain. */
export interface Clock {
  now(): DateTime;
}
