import { statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { UnavailableError } from '../../domain/shared/errors';

/** The code a store's write failure carries (`writeFailure().code`, /health) when its files left their place. */
export const FILES_MOVED_CODE = 'FILES_MOVED';

/**
 * Whether a store's files are still the ones it opened: the same file (device and inode) at each path. A data
 * directory removed under a running hub (`rm -rf`, an unmounted volume), or a `-wal` file deleted, left SQLite
 * writing into files no path names any more: every upload was answered 201 and `/health` said ok, and all of them
 * were gone at the next start. A store checks before each commit (two `stat` calls, a few microseconds against the
 * commit's fsync) and refuses the write instead, until a restart.
 *
 * A file not there yet (the `-wal` before the first write) is taken when it first appears; one that was seen and
 * is gone, or is another file now, is moved. SQLite keeps its `-wal` while a connection is open (a TRUNCATE
 * checkpoint empties it in place), so neither happens in normal running.
 */
export class FilesInPlace {
  private readonly seen = new Map<string, { dev: number; ino: number }>();
  private readonly paths: readonly string[];

  constructor(paths: readonly string[]) {
    // Absolute now, as SQLite opened them: an embedder's process.chdir() made a relative ./data name other files.
    this.paths = paths.filter((p) => p !== '' && p !== ':memory:').map((p) => resolve(p));
    this.moved();
  }

  /** The first path whose file is gone or another since first seen, else null. */
  moved(): string | null {
    for (const path of this.paths) {
      let now: { dev: number; ino: number };
      try {
        now = statSync(path);
      } catch (error) {
        // Gone (ENOENT, ENOTDIR): moved. Anything else (EACCES after a chmod, ESTALE) says nothing of where it is.
        const code = (error as NodeJS.ErrnoException).code;
        if (this.seen.has(path) && (code === 'ENOENT' || code === 'ENOTDIR')) return path;
        continue;
      }
      const before = this.seen.get(path);
      if (before === undefined) this.seen.set(path, { dev: now.dev, ino: now.ino });
      else if (before.dev !== now.dev || before.ino !== now.ino) return path;
    }
    return null;
  }

  /** Throws the write's refusal when a file moved (see `moved`). */
  check(): void {
    const path = this.moved();
    if (path !== null) throw filesMoved(path);
  }
}

/** storage_unavailable naming the file only (no directory: a path may name a person's home or a host). */
export const filesMoved = (path: string): UnavailableError => {
  const error = new UnavailableError(
    'storage_unavailable',
    `the hub's file ${basename(path)} was removed or replaced while it was open (its data directory deleted or unmounted?): writes are refused until the store is opened again, since nothing written now would be found again. Do not kill -9: the hub still holds the files (see README, "Disk")`,
  );
  (error as { cause?: unknown }).cause = { code: FILES_MOVED_CODE };
  return error;
};
