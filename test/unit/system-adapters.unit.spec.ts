import { createHmac } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DateTime } from 'luxon';
import { HmacPatientKeys } from '../../src/adapters/system/hmac-patient-keys';
import { SystemClock } from '../../src/adapters/system/system-clock';
import { parseCpr } from '../../src/domain/monitoring/cpr';
import { pseudonymSecret } from '../../src/bootstrap/secret';
import { authSecret, existingAuthSecret } from '../../src/bootstrap/security-module';
import { ConfigError } from '../../src/bootstrap/config';
import { writeFileWhole } from '../../src/adapters/system/write-file-whole';

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

  it('written whole (0600, no temporary file left); an empty or cut-short file stops the start naming it, never replaced', () => {
    const fs = require('node:fs') as typeof import('node:fs');
    const dir = fs.mkdtempSync(join(tmpdir(), 'rts-secret-'));
    try {
      const secret = pseudonymSecret(undefined, dir);
      expect(secret).toHaveLength(32);
      expect(fs.readdirSync(dir)).toEqual(['pseudonym.secret']);
      expect(fs.statSync(join(dir, 'pseudonym.secret')).mode & 0o777).toBe(0o600);
      for (const damaged of ['', '\n', 'abc', secret.toString('hex').slice(0, 31)]) {
        fs.writeFileSync(join(dir, 'pseudonym.secret'), damaged);
        let error: unknown;
        try {
          pseudonymSecret(undefined, dir);
        } catch (e) {
          error = e;
        }
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as ConfigError).problems).toEqual([expect.stringMatching(/^pseudonym\.secret in the data directory \(RTS_DATA_DIR, the library.s dataDir\): (is empty|is not a secret).*restore it from your backup/)]);
        expect(fs.readFileSync(join(dir, 'pseudonym.secret'), 'utf8')).toBe(damaged); // not replaced
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('authSecret (bootstrap)', () => {
  it('an empty auth.secret stops the start naming it (it was a key of no bytes: every token refused, dev-login 500)', () => {
    const fs = require('node:fs') as typeof import('node:fs');
    const dir = fs.mkdtempSync(join(tmpdir(), 'rts-auth-'));
    try {
      const made = authSecret(undefined, dir);
      expect(existingAuthSecret(undefined, dir)?.equals(made)).toBe(true);
      expect(fs.readdirSync(dir)).toEqual(['auth.secret']);
      fs.writeFileSync(join(dir, 'auth.secret'), '');
      expect(() => existingAuthSecret(undefined, dir)).toThrow(ConfigError);
      expect(() => authSecret(undefined, dir)).toThrow(/auth\.secret in the data directory \(RTS_DATA_DIR, the library.s dataDir\): is empty.*delete it to have the hub make a new one/);
      // Cut short: 40 of its 64 digits is no secret the hub wrote (RTS_AUTH_JWT_SECRET asks 64 too), not a new HS256 key.
      fs.writeFileSync(join(dir, 'auth.secret'), made.toString('hex').slice(0, 40));
      expect(() => authSecret(undefined, dir)).toThrow(/auth\.secret in the data directory .*at least 64 hex digits/);
      fs.rmSync(join(dir, 'auth.secret'));
      expect(authSecret(undefined, dir)).toHaveLength(32);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('writeFileWhole', () => {
  it('exclusive: false when the file exists (the other writer won), the file untouched; otherwise replaced whole, its mode as asked', () => {
    const fs = require('node:fs') as typeof import('node:fs');
    const dir = fs.mkdtempSync(join(tmpdir(), 'rts-whole-'));
    try {
      const file = join(dir, 'f.json');
      expect(writeFileWhole(file, 'one', { exclusive: true })).toBe(true);
      expect(writeFileWhole(file, 'two', { exclusive: true })).toBe(false);
      expect(fs.readFileSync(file, 'utf8')).toBe('one');
      expect(writeFileWhole(file, 'three', { exclusive: false, mode: 0o640 })).toBe(true);
      expect(fs.readFileSync(file, 'utf8')).toBe('three');
      expect(fs.statSync(file).mode & 0o777).toBe(0o640);
      expect(fs.readdirSync(dir)).toEqual(['f.json']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
