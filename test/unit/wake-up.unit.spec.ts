import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { WakeUp } from '../../src/application/wake-up';

/**
 * WakeUp ends waits at a stop without keeping anything per wait. The leak it replaces: the background loops raced
 * their one stop promise (`Promise.race([wait, stopping])`) at every pass, and each race left ~312 bytes on that
 * promise until the hub stopped: ~356 MB a day idle (the leak hunter's measure, 2026-12-02).
 */
describe('WakeUp', () => {
  it('answers the raced promise, and holds nothing once it has settled', async () => {
    const wake = new WakeUp();
    await expect(wake.race(Promise.resolve(7))).resolves.toBe(7);
    await expect(wake.race(Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(wake.pending).toBe(0);
  });

  it('ends every race in progress at fire(), and every later one at once', async () => {
    const wake = new WakeUp();
    let late: (v: string) => void = () => undefined;
    const slow = new Promise<string>((resolve) => (late = resolve));
    const racing = [wake.race(slow), wake.race(new Promise(() => undefined))];
    expect(wake.pending).toBe(2);
    wake.fire();
    await expect(Promise.all(racing)).resolves.toEqual([undefined, undefined]);
    expect(wake.pending).toBe(0);
    expect(wake.isFired).toBe(true);
    late('too late');
    await expect(wake.race(new Promise(() => undefined))).resolves.toBeUndefined();
  });

  it('lets a promise that rejects after fire() go without an unhandled rejection', async () => {
    const wake = new WakeUp();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      let fail: (e: Error) => void = () => undefined;
      const failing = new Promise<never>((_, reject) => (fail = reject));
      const racing = wake.race(failing);
      wake.fire();
      await expect(racing).resolves.toBeUndefined();
      fail(new Error('after the stop'));
      const afterFire = wake.race(Promise.reject(new Error('raced after the stop')));
      await expect(afterFire).resolves.toBeUndefined();
      await new Promise((r) => setTimeout(r, 20));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it("keeps a DrainLoop's heap flat over 100,000 passes (the old race kept ~312 bytes a pass: ~30 MB)", () => {
    const root = path.resolve(__dirname, '../..');
    const run = spawnSync(process.execPath, ['--expose-gc', '-r', './test/support/ts-register.js', 'test/support/drain-loop-heap.ts', '100000'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const { passes, warm, end } = JSON.parse(run.stdout) as { passes: number; warm: number; end: number };
    expect(passes).toBeGreaterThanOrEqual(100_000);
    // Flat: well under 2 MB, where the leak grew the heap by ~30 MB over these passes.
    expect(end - warm).toBeLessThan(2 * 1024 * 1024);
  });
});
