import { readFileSync } from 'node:fs';

/**
 * How many file descriptors this process may hold open (the soft RLIMIT_NOFILE, `ulimit -n`), or null where it
 * cannot be read (not Linux) or has no limit. Node raises the soft limit to the hard one as it starts, so under
 * systemd this is LimitNOFILE's hard value (524288 by default), not the 1024 of a shell's `ulimit -Sn`.
 */
export const openFileLimit = (limitsFile = '/proc/self/limits'): number | null => {
  let text: string;
  try {
    text = readFileSync(limitsFile, 'utf8');
  } catch {
    return null;
  }
  // "Max open files            1024                 524288               files"
  const soft = /^Max open files\s+(\S+)/m.exec(text)?.[1];
  return soft !== undefined && /^[0-9]+$/.test(soft) ? Number(soft) : null;
};
