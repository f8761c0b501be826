import { createHmac } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DateTime } from 'luxon';
import { HmacPatientKeys } from '../../src/adapters/system/hmac-patient-keys';
import { SystemClock } from '../../src/adapters/system/system-clock';
import { parseCpr } from '../../src/domain/monitoring/cpr';
import { pseudonymSecret } from '../../src/bootstrap/secret';

describe('HmacPatientKeys', () => {
  it('gives the pseudonym every stored stream and row is named by: p + the first 128 bits of HMAC-SHA256 in hex', () => {
    // Pinned to the plain HMAC of the secret's bytes: a change here would orphan every patient's data.
    const secret = Buffer.from('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'hex');
    const keys = new HmacPatientKeys(secret);
    for (const cpr of ['251248-1234', '010203-2345']) {
      const expected = `p${createHmac('sha256', secret).update(cpr, 'utf8').digest('hex').slice(0, 32)}`;
      expect(keys.keyFor(parseCpr(cpr))).toBe(expected);
    }
    expect(new HmacPatientKeys(Buffer.alloc(32, 1)).keyFor(parseCpr('251248-1234'))).not.toBe(keys.keyFor(parseCpr('251248-1234')));
    expect(() => new HmacPatientKeys(Buffer.alloc(15))).toThrow(/at least 16 bytes/);
  });
});

describe('SystemClock', () => {
  it('reads now as a UTC DateTime, like DateTime.utc()', () => {
    const before = Date.now();
    const now = new SystemClock().now();
    const after = Date.now();
    expect(now.isValid).toBe(true);
    expect(now.zone.equals(DateTime.utc().zone)).toBe(true);
    expect(now.offset).toBe(0);
    expect(now.toMillis()).toBeGreaterThanOrEqual(before);
    expect(now.toMillis()).toBeLessThanOrEqual(after);
    expect(now.toISO()).toMatch(/Z$/);
  });
});

describe('pseudonymSecret (bootstrap)', () => {
  it('two processes generating it at once: the one that loses the race takes the winner\'s file', () => {
    // The module object itself (not an import's copy), so that the spy is what secret.ts calls.
    const fs = require('node:fs') as typeof import('node:fs');
    const dir = fs.mkdtempSync(join(tmpdir(), 'rts-secret-'));
    try {
      const winner = pseudonymSecret(undefined, dir);
      // This process looked before the other one wrote: it sees no file, then finds one when it writes.
      const exists = jest.spyOn(fs, 'existsSync').mockReturnValueOnce(false);
      expect(pseudonymSecret(undefined, dir).equals(winner)).toBe(true);
      expect(exists).toHaveBeenCalled();
      exists.mockRestore();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
