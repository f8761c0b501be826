import { chromiumRequired, chromiumUnavailable } from '../support/browser';

// The browser tests skip with one line where Chromium is missing, and fail where it is required (CI).
describe('whether the browser tests can run', () => {
  const missing = '/nonexistent/chromium';

  it('gives the reason to skip when there is no Chromium and nothing requires it', () => {
    expect(chromiumUnavailable(missing, {})).toMatch(/no Chromium at \/nonexistent\/chromium \(apt-get install -y chromium/);
  });

  it('throws instead under CI or with RTS_REQUIRE_CHROMIUM=1: a missing browser is never a skip there', () => {
    for (const env of [{ CI: 'true' }, { CI: '1' }, { RTS_REQUIRE_CHROMIUM: '1' }]) {
      expect(chromiumRequired(env)).toBe(true);
      expect(() => chromiumUnavailable(missing, env)).toThrow(/must run here/);
    }
    expect(chromiumRequired({ CI: 'false' })).toBe(false);
  });

  it('is null for an executable that is there', () => {
    expect(chromiumUnavailable(process.execPath, { CI: 'true' })).toBeNull();
  });
});
