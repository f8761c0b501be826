import { randomUUID } from 'node:crypto';
import { DateTime } from 'luxon';
import type { Clock } from '../../application/ports/clock';
import type { IdGenerator } from '../../application/ports/id-generator';

export class SystemClock implements Clock {
  now(): DateTime {
    return DateTime.utc();
  }
}

export class RandomIds implements IdGenerator {
  uuid(): string {
    return randomUUID();
  }
}
