import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// openSync, as data-dir-backup.ts calls it, with a hook that runs just before the claim's file is created.
const beforeClaim: { run?: () => void } = {};
jest.mock('node:fs', () => {
  const real = jest.requireActual<typeof import('node:fs')>('node:fs');
  return {
    ...real,
    openSync: (path: import('node:fs').PathLike, ...rest: unknown[]) => {
      if (String(path).endsWith('.rts-in-progress')) beforeClaim.run?.();
      return (real.openSync as (...a: unknown[]) => number)(path, ...rest);
    },
  };
});

import { claimEmptyDirectory } from '../../src/adapters/backup/data-dir-backup';

/**
 * A hub that starts on a directory between rts restore's check that it is empty and its claim (the hub's lock file
 * made in between) does not see the claim: the restore must see the hub's file then, and give way. Before, it went on,
 * met the secrets the hub generated, failed, and its cleanup deleted the running hub's data directory.
 */
describe('claimEmptyDirectory against a hub starting at the same moment', () => {
  const base = mkdtempSync(join(tmpdir(), 'rts-claim-race-'));
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it.each([['an empty directory', true], ['a new directory', false]])('gives way in %s, and leaves the hub its file', (_, existing) => {
    const dir = join(base, existing ? 'empty' : 'new');
    if (existing) mkdirSync(dir);
    beforeClaim.run = () => writeFileSync(join(dir, 'hub.lock'), '');
    try {
      expect(() => claimEmptyDirectory(dir)).toThrow(expect.objectContaining({ code: 'target_not_empty' }));
    } finally {
      beforeClaim.run = undefined;
    }
    expect(readdirSync(dir)).toEqual(['hub.lock']);
  });
});
