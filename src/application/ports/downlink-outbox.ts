import type { DownlinkEnvelope } from '../directory/directory-messages';

/**
 * Where the downlink publisher hands its messages. Part B implements it on AMQP: a durable send to `queue` that
 * resolves only when the broker has accepted the message (and rejects when it was rejected or released), so the
 * publisher moves its checkpoint only past messages the broker holds. Sends may run concurrently; a resend
 * carries the same envelope id, which receivers use to dedupe.
 */
export interface DownlinkOutbox {
  send(queue: string, envelope: DownlinkEnvelope): Promise<void>;
}

/** Named positions in the store's global order, kept by subscriptions such as the downlink publisher. */
export interface CheckpointStore {
  /** The stored position for `name`, or 0n when there is none. */
  get(name: string): Promise<bigint>;
  set(name: string, position: bigint): Promise<void>;
}

/**
 * One downlink message made ready for its receiver, or why it cannot be sent now. The held-downlink logic
 * (application/downlink/held-downlinks.ts) decides with it whether to send or to hold; the AMQP outbox makes it.
 *   ready          encoded for the receiver; `send()` resolves once the broker accepted it
 *   no_key         the receiving system has no valid encryption key now (it may register one later): hold it
 *   undeliverable  it can never be sent (breaks its contract, larger than the broker takes): logged and dropped
 */
export type PreparedDownlink =
  | Readonly<{ kind: 'ready'; send(): Promise<void> }>
  | Readonly<{ kind: 'no_key' }>
  | Readonly<{ kind: 'undeliverable' }>;
