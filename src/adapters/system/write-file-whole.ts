import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, linkSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Writes `content` to `file` whole or not at all: into a temporary file beside it (`mode`, 0600 by default), fsynced, then linked
 * (`exclusive`: fails when `file` exists, as flag 'wx' does; answers false then) or renamed over it, and the
 * directory fsynced. Writing the file in place left it empty or cut short when the disk filled or the power went
 * at a hub's first start: the next start read an empty auth.secret, and every token failed (dev-login 500).
 * Where the file system has no hard links (EPERM, ENOTSUP), an exclusive write falls back to 'wx' in place.
 */
export const writeFileWhole = (file: string, content: string, { exclusive, mode = 0o600 }: { exclusive: boolean; mode?: number }): boolean => {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    fchmodSync(fd, mode); // whatever the umask
    writeFileSync(fd, content);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw error;
  }
  closeSync(fd);
  try {
    if (exclusive) linkSync(tmp, file);
    else renameSync(tmp, file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (exclusive && code === 'EEXIST') return false;
    if (!exclusive || (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP')) throw error;
    try {
      writeFileSync(file, content, { mode, flag: 'wx' });
    } catch (inPlace) {
      if ((inPlace as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw inPlace;
    }
  } finally {
    if (exclusive) rmSync(tmp, { force: true });
  }
  syncDirectory(dirname(file));
  return true;
};

/** The directory's entry of a new file made durable (best effort: some file systems refuse to open a directory). */
const syncDirectory = (dir: string): void => {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // not on this file system
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
};
