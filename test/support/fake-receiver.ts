import { EventEmitter } from 'node:events';
import type { Message } from 'rhea';

/**
 * A rhea receiver link as QueueConsumer uses it, fed by the test: `deliver` is the broker sending a message (one
 * credit), and what the consumer did with it (accepted, modified, released) is in the array it returns.
 */
export class FakeReceiver extends EventEmitter {
  credit = 0;
  readonly source: { address: string };
  constructor(address = 'q') {
    super();
    this.source = { address };
  }
  add_credit(n: number): void {
    this.credit += n;
  }
  is_open(): boolean {
    return true;
  }
  close(): void {
    this.emit('receiver_close');
  }
  /** The broker sends a message: it uses one credit (none left: it would not send it). */
  deliver(message: Message, deliveryCount = 0): string[] {
    if (this.credit <= 0) throw new Error('no credit: the broker would not send it');
    this.credit -= 1;
    const settled: string[] = [];
    const delivery = {
      accept: () => void settled.push('accepted'),
      modified: (o: { delivery_failed?: boolean }) => void settled.push(o?.delivery_failed ? 'modified (failed)' : 'modified (uncounted)'),
      release: () => void settled.push('released'),
    };
    this.emit('message', { delivery, message: { ...message, delivery_count: deliveryCount } });
    return settled;
  }
}
