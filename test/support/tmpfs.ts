import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Why this process cannot mount a tmpfs (a disk that can be filled), or null when it can: tests of a full disk
 * mount one of their own and are skipped, saying why, where they cannot (not root, no mount in a container).
 */
export const tmpfsUnavailable = (): string | null => {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'not root (mounting a tmpfs needs root)';
  const probe = mkdtempSync(join(tmpdir(), 'rts-tmpfs-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'pipe' });
    execFileSync('umount', [probe], { stdio: 'pipe' });
    return null;
  } catch (error) {
    return `cannot mount a tmpfs: ${String((error as Error).message).split('\n')[0]}`;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
};
