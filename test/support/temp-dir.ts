import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A temp dir made on first use of `dir`, not when called: a describe's body runs even where its tests are skipped
 * (a missing tool, `jest -t`) and its hooks are not, and a dir made there was left in /tmp (28 of
 * broker-accounts' after a filtered run). `remove()` deletes it if it was made.
 */
export const tempDir = (prefix: string): { readonly dir: string; remove(): void } => {
  let made: string | undefined;
  return {
    get dir() {
      made ??= mkdtempSync(join(tmpdir(), prefix));
      return made;
    },
    remove: () => {
      if (made !== undefined) rmSync(made, { recursive: true, force: true });
    },
  };
};
