// RTS_HTTP_MAX_CONNECTIONS: a whole number (a bad one stops the start naming it), and the cap it gives with the
// process's descriptor limit: 1024 by default, lower when the limit leaves less room, and a setting the limit
// cannot hold refused at start (the cap would never be reached: descriptors would run out first).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFileLimit } from '../../src/adapters/system/open-file-limit';
import { ConfigError, loadConfig } from '../../src/bootstrap/config';
import { DEFAULT_MAX_HTTP_CONNECTIONS, MIN_DEFAULT_HTTP_CONNECTIONS, RESERVED_FILE_DESCRIPTORS, maxHttpConnections } from '../../src/bootstrap/http-connections';

describe('RTS_HTTP_MAX_CONNECTIONS', () => {
  it('is a whole number from 1 to 1,000,000; anything else stops the start naming it', () => {
    expect(loadConfig({ RTS_HTTP_MAX_CONNECTIONS: '3' }).RTS_HTTP_MAX_CONNECTIONS).toBe(3);
    expect(loadConfig({}).RTS_HTTP_MAX_CONNECTIONS).toBeUndefined();
    for (const value of ['0', '1000001', '1e3', '-5', '500 ', 'many', '2.5']) {
      expect(() => loadConfig({ RTS_HTTP_MAX_CONNECTIONS: value })).toThrow(/RTS_HTTP_MAX_CONNECTIONS: /);
    }
  });

  it('defaults to 1024, or to the descriptor limit less the reserve when that is lower', () => {
    expect(maxHttpConnections({}, 524_288)).toBe(DEFAULT_MAX_HTTP_CONNECTIONS);
    expect(maxHttpConnections({}, null)).toBe(DEFAULT_MAX_HTTP_CONNECTIONS);
    expect(maxHttpConnections({}, 1024)).toBe(1024 - RESERVED_FILE_DESCRIPTORS);
    expect(maxHttpConnections({}, RESERVED_FILE_DESCRIPTORS + MIN_DEFAULT_HTTP_CONNECTIONS)).toBe(MIN_DEFAULT_HTTP_CONNECTIONS);
  });

  it('refuses to start when the limit leaves the default fewer than 16 connections (64 gave 1: one slow client took the hub out)', () => {
    for (const limit of [64, 100, RESERVED_FILE_DESCRIPTORS + MIN_DEFAULT_HTTP_CONNECTIONS - 1]) {
      let error: unknown;
      try {
        maxHttpConnections({}, limit);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).problems).toEqual([expect.stringMatching(new RegExp(`^the open-file limit of ${limit} descriptors .*at least 16 .*LimitNOFILE`))]);
    }
    // Where some room is left, the setting that says so few are meant is named with the most the limit holds.
    expect(() => maxHttpConnections({}, 140)).toThrow(/or set RTS_HTTP_MAX_CONNECTIONS to at most 12/);
    expect(maxHttpConnections({ RTS_HTTP_MAX_CONNECTIONS: 12 }, 140)).toBe(12);
    // None left: the limit is what to raise, to the reserve and the cap asked for ("give at most 1" refused 1 itself).
    expect(() => maxHttpConnections({ RTS_HTTP_MAX_CONNECTIONS: 1 }, 100)).toThrow(/raise the limit to at least 129 /);
  });

  it('takes a setting the limit can hold; refuses one it cannot, naming the setting and what to do', () => {
    expect(maxHttpConnections({ RTS_HTTP_MAX_CONNECTIONS: 3 }, 1024)).toBe(3);
    expect(maxHttpConnections({ RTS_HTTP_MAX_CONNECTIONS: 5000 }, 524_288)).toBe(5000);
    expect(maxHttpConnections({ RTS_HTTP_MAX_CONNECTIONS: 5000 }, null)).toBe(5000);
    expect(maxHttpConnections({ RTS_HTTP_MAX_CONNECTIONS: 4096 - RESERVED_FILE_DESCRIPTORS }, 4096)).toBe(3968);
    let error: unknown;
    try {
      maxHttpConnections({ RTS_HTTP_MAX_CONNECTIONS: 4000 }, 4096);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([expect.stringMatching(/^RTS_HTTP_MAX_CONNECTIONS: .*4096 descriptors.*at most 3968.*LimitNOFILE/)]);
  });
});

describe('openFileLimit', () => {
  // Made when the first test runs, not when the file is read: a run filtered to other tests (jest -t, a mutation
  // tester's per-test runs) skips this block's afterAll and left the directory behind.
  let dir = '';
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'rts-open-file-limit-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const limits = (line: string) => {
    const file = join(dir, `limits-${Math.random().toString(16).slice(2)}`);
    writeFileSync(file, `Limit                     Soft Limit           Hard Limit           Units     \nMax processes             127590               127590               processes \n${line}\nMax locked memory         8388608              8388608              bytes     \n`);
    return file;
  };

  it("reads the soft limit of /proc/self/limits's format", () => {
    expect(openFileLimit(limits('Max open files            1024                 524288               files     '))).toBe(1024);
    expect(openFileLimit(limits('Max open files            unlimited            unlimited            files     '))).toBeNull();
    expect(openFileLimit(join(dir, 'absent'))).toBeNull();
  });

  it('reads this process, on Linux', () => {
    if (process.platform !== 'linux') return;
    expect(openFileLimit()).toBeGreaterThan(0);
  });
});
