import { createHash } from 'node:crypto';
import { sha256Hex, uuidToOid, uuidV5 } from '../../src/application/ids';

/**
 * Stored event ids, uniqueIds and document hashes are made with these: a change of output would make a repeated
 * upload look new and orphan nothing less than idempotency. Pinned to RFC 9562's vector, to values computed by the
 * first implementation, and to a plain Hash-object computation for names of all kinds.
 */
describe('ids', () => {
  it('uuidV5 gives RFC 9562 name-based UUIDs (the RFC example, and the project namespace as before)', () => {
    expect(uuidV5('www.example.com', '6ba7b810-9dad-11d1-80b4-00c04fd430c8')).toBe('2ed6657d-e927-568b-95e1-2665a8aea6a2');
    expect(uuidV5('submit/2.25.1/document-2.25.1/0')).toBe('bb98a4b7-81e7-57d3-94c3-7f93d2a84464');
  });

  it('uuidV5 agrees with SHA-1 over namespace bytes + UTF-8 name for any name', () => {
    const reference = (name: string): string => {
      const ns = Buffer.from('1f6b1c8e6f7e4a479a7e2d1c0a9f5b3e', 'hex');
      const h = createHash('sha1').update(ns).update(name, 'utf8').digest().subarray(0, 16);
      h[6] = (h[6]! & 0x0f) | 0x50;
      h[8] = (h[8]! & 0x3f) | 0x80;
      const x = h.toString('hex');
      return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
    };
    for (const name of ['', 'a', 'observation/p1/øæå-∑', 'audit/audit-2026-11-30-1/' + 'f'.repeat(64), '\u{1F600}'.repeat(50)]) {
      expect(uuidV5(name)).toBe(reference(name));
    }
  });

  it('sha256Hex is the hex SHA-256 of the UTF-8 text; uuidToOid is the 2.25 arc', () => {
    expect(sha256Hex('<ClinicalDocument/>')).toBe('e51087e000325adba51f8b8c70dd2359b18c939b11b212a0461c2952882895a0');
    expect(sha256Hex('blodtryk æøå')).toBe(createHash('sha256').update('blodtryk æøå', 'utf8').digest('hex'));
    expect(uuidToOid('00000000-0000-0000-0000-000000000001')).toBe('2.25.1');
  });
});
