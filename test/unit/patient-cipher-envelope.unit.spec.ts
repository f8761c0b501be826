// The sealed envelope (`rts-sealed:v1:<iv>.<ciphertext>.<tag>`, AES-256-GCM) opens only as sealWith wrote it.
import { randomBytes } from 'node:crypto';
import { openWith, sealWith } from '../../src/adapters/crypto/patient-cipher';

const key = randomBytes(32);
const place = Buffer.from('p-0123|document:2.25.1');
const parts = (sealed: string): [string, string[]] => {
  const at = sealed.lastIndexOf(':') + 1;
  return [sealed.slice(0, at), sealed.slice(at).split('.')];
};
const rebuilt = (prefix: string, [iv, ct, tag]: string[]) => `${prefix}${iv}.${ct}.${tag}`;

describe('openWith', () => {
  it('opens what sealWith wrote, under the same key and place', () => {
    expect(openWith(key, sealWith(key, 'secret reading', place), place)).toBe('secret reading');
  });

  it.each([4, 8, 12, 15])('refuses an envelope whose tag was cut to %i bytes (node takes a GCM tag of 4 to 16 bytes unless told)', (bytes) => {
    const [prefix, [iv, ct, tag]] = parts(sealWith(key, 'secret reading', place));
    const cut = Buffer.from(tag!, 'base64url').subarray(0, bytes).toString('base64url');
    expect(() => openWith(key, rebuilt(prefix, [iv!, ct!, cut]), place)).toThrow('malformed sealed value');
  });

  it('refuses an IV of another length than the 12 bytes sealWith writes', () => {
    const [prefix, [iv, ct, tag]] = parts(sealWith(key, 'secret reading', place));
    const longer = Buffer.concat([Buffer.from(iv!, 'base64url'), Buffer.alloc(4)]).toString('base64url');
    expect(() => openWith(key, rebuilt(prefix, [longer, ct!, tag!]), place)).toThrow('malformed sealed value');
  });

  it('refuses an envelope moved to another place', () => {
    expect(() => openWith(key, sealWith(key, 'secret reading', place), Buffer.from('p-4567|document:2.25.1'))).toThrow();
  });
});
