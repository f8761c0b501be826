import { createHash } from 'node:crypto';

/**
 * Deterministic ids. An incoming command's own id becomes the id of what it causes (UUIDv5), so a repeat is
 * recognised by the store instead of creating a second copy.
 */
const NAMESPACE = '1f6b1c8e-6f7e-4a47-9a7e-2d1c0a9f5b3e'; // telemed-rts namespace for UUIDv5

const uuidBytes = (uuid: string): Buffer => Buffer.from(uuid.replace(/-/g, ''), 'hex');

const formatUuid = (bytes: Buffer): string => {
  const h = bytes.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
};

/** RFC 9562 UUID version 5 (SHA-1, name-based) under the project's namespace. */
export const uuidV5 = (name: string, namespace: string = NAMESPACE): string => {
  const hash = createHash('sha1').update(uuidBytes(namespace)).update(name, 'utf8').digest().subarray(0, 16);
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  return formatUuid(hash);
};

/**
 * An XDS uniqueId must be an OID. UUIDs have one under the arc 2.25 (ITU-T X.667): 2.25.<the UUID as an integer>.
 */
export const uuidToOid = (uuid: string): string => `2.25.${BigInt(`0x${uuid.replace(/-/g, '')}`).toString(10)}`;

export const isOid = (value: string): boolean => /^[0-2](\.(0|[1-9]\d*))+$/.test(value) && value.length <= 64;

export const sha256Hex = (content: string): string => createHash('sha256').update(content, 'utf8').digest('hex');
