import type { ExpertProfile } from '../../domain/directory/expert';
import { uuidV5 } from '../ids';

/**
 * The hub's message contract as TypeScript types: what the uplink handler takes and the downlink planner makes.
 * The zod schemas that parse and serialize these live at the edge, in src/adapters/messaging/messages.ts, which
 * re-exports everything here; code outside the core should import from there.
 *
 * Envelope (every message, both directions):
 *   { id: uuid, type, version: 1, systemId, correlationId, time: ISO-8601 with offset, payload }
 * - uplink: `systemId` is the sending system. `id` is the idempotency key: a repeat changes nothing.
 * - downlink: `systemId` is the receiving system. `id` is deterministic (`downlinkMessageId`) so a receiver
 *   dedupes resends; `time` is when the hub recorded the source event; `correlationId` follows the uplink flow.
 */
export const CONTRACT_VERSION = 1 as const;
/** Most experts in one 'experts.batch' or 'directory.snapshot' message. */
export const MAX_BATCH_EXPERTS = 500;
/**
 * Most UTF-8 bytes of experts' JSON in one 'experts.batch' or 'directory.snapshot' message. A broker takes messages
 * up to a limit (ActiveMQ as this project configures it: 1 MiB, `wireFormat.maxFrameSize`), and a larger one costs
 * the sender its connection, so a part that does not fit would be resent forever. With message security a body
 * grows by about 16/9 (a JWS, base64url, inside a JWE, base64url again): 384 KiB of JSON is ~680 KiB on the wire.
 * 500 experts with long profiles in Chinese are ~600 KiB of JSON.
 */
export const MAX_BATCH_JSON_BYTES = 384 * 1024;

/** UTF-8 length of a string, without Buffer (the core runs anywhere). */
const utf8Length = (text: string): number => {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      bytes += 4; // a surrogate pair: one code point of four bytes
      i++;
    } else bytes += 3;
  }
  return bytes;
};

/**
 * Experts cut into parts of at most `maxCount` experts and `maxBytes` bytes of their JSON, in order (an expert
 * larger than `maxBytes` alone is a part of its own). Deterministic: the same experts give the same parts.
 */
export const partitionExperts = <T>(experts: readonly T[], maxCount = MAX_BATCH_EXPERTS, maxBytes = MAX_BATCH_JSON_BYTES): T[][] => {
  const parts: T[][] = [];
  let part: T[] = [];
  let bytes = 0;
  for (const expert of experts) {
    const size = utf8Length(JSON.stringify(expert)) + 1; // and its comma
    if (part.length > 0 && (part.length >= maxCount || bytes + size > maxBytes)) {
      parts.push(part);
      part = [];
      bytes = 0;
    }
    part.push(expert);
    bytes += size;
  }
  if (part.length > 0) parts.push(part);
  return parts;
};

export type Envelope<Type extends string, Payload> = Readonly<{
  id: string;
  type: Type;
  version: typeof CONTRACT_VERSION;
  systemId: string;
  correlationId: string;
  time: string;
  payload: Readonly<Payload>;
}>;

/** One expert as a system uploads it: its local id and its profile, flattened. */
export type UploadedExpert = ExpertProfile & Readonly<{ localExpertId: string }>;

/**
 * Uplink payloads. `homeSystemId` on the expert messages defaults to the sender; naming another system is
 * refused (expert_owned_by_other_system): a system may only speak for its own experts.
 */
export type UplinkPayloads = {
  'system.join.requested': { name?: string; expectedBatches: number; expectedExperts: number };
  'experts.batch': { batchIndex: number; batchCount: number; experts: readonly UploadedExpert[] };
  'expert.registered': { localExpertId: string; homeSystemId?: string; profile: ExpertProfile };
  'expert.changed': { localExpertId: string; homeSystemId?: string; profile: ExpertProfile };
  'expert.retired': { localExpertId: string; homeSystemId?: string };
};
export type UplinkType = keyof UplinkPayloads;
export const UPLINK_TYPES = ['system.join.requested', 'experts.batch', 'expert.registered', 'expert.changed', 'expert.retired'] as const satisfies readonly UplinkType[];
export type UplinkEnvelope = { [T in UplinkType]: Envelope<T, UplinkPayloads[T]> }[UplinkType];
/** The envelope(s) of the given type(s). */
export type UplinkOf<T extends UplinkType> = Extract<UplinkEnvelope, { type: T }>;

/**
 * An expert as the directory shares it. `revision` grows with every change, and may skip numbers (a message that sent
 * the profile the expert had takes one and goes to no one): keep the highest one seen.
 */
export type DirectoryExpert = Readonly<{ expertId: string; homeSystemId: string; profile: ExpertProfile; revision: number }>;

export type DownlinkPayloads = {
  'directory.expert.upserted': DirectoryExpert;
  'directory.expert.retired': { expertId: string; homeSystemId: string; revision: number };
  /** Full sync for a newly joined system: every expert of the other joined systems, in batches. */
  'directory.snapshot': { snapshotId: string; batchIndex: number; batchCount: number; experts: readonly DirectoryExpert[] };
  /** To the joiner: confirmation; to the others: news. */
  'system.joined': { systemId: string; name: string; area: string };
};
export type DownlinkType = keyof DownlinkPayloads;
export const DOWNLINK_TYPES = ['directory.expert.upserted', 'directory.expert.retired', 'directory.snapshot', 'system.joined'] as const satisfies readonly DownlinkType[];
export type DownlinkEnvelope = { [T in DownlinkType]: Envelope<T, DownlinkPayloads[T]> }[DownlinkType];
export type DownlinkOf<T extends DownlinkType> = Extract<DownlinkEnvelope, { type: T }>;

/**
 * Deterministic downlink message id: UUIDv5 of the source event id and the target system (and, for an event that
 * fans out into several messages to one target, the part). Planning the same event again gives the same ids.
 */
export const downlinkMessageId = (sourceEventId: string, targetSystemId: string, part?: string): string =>
  uuidV5(`downlink/${sourceEventId}/${targetSystemId}${part === undefined ? '' : `/${part}`}`);
