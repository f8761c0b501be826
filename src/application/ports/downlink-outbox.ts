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
