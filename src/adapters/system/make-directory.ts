import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

const codeOf = (error: unknown): string | undefined => (error as { code?: string }).code;

const isDirectory = (path: string): boolean => {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false; // a dangling symbolic link, say
  }
};

/**
 * `mkdir -p`: the directory and whichever of its parents are missing, each made with `mode`; returns the first
 * directory made (undefined when it existed), as `mkdirSync(path, { recursive: true })` does.
 *
 * Not that call itself: Node 20's recursive mkdir (sync and async) never returns for a parent that exists and refuses
 * new entries with ENOENT, as /proc does, so `RTS_DATA_DIR=/proc/x/y` or `openTeleMed({ dataDir: '/proc/x/y' })`
 * hung at start instead of failing. Here the first refusal is thrown, with its code, and with the path asked for
 * as `path` (as Node's recursive mkdir reports it: what startupSettingProblem places in the data directory).
 */
export const makeDirectory = (path: string, mode = 0o700): string | undefined => {
  const asked = resolve(path);
  const refused = (code: string, at: string, cause?: unknown) =>
    Object.assign(new Error(`${code}: cannot make the directory '${asked}' (at '${at}')`, { cause }), { code, syscall: 'mkdir', path: asked });
  const missing: string[] = [];
  for (let at = asked; ; at = dirname(at)) {
    let code: string | undefined;
    try {
      if (statSync(at).isDirectory()) break;
      code = 'ENOTDIR';
    } catch (error) {
      code = codeOf(error);
      if (code !== 'ENOENT') throw refused(code ?? 'EIO', at, error);
    }
    if (code === 'ENOTDIR') throw refused(at === asked ? 'EEXIST' : 'ENOTDIR', at);
    missing.unshift(at);
    if (dirname(at) === at) break;
  }
  for (const dir of missing) {
    try {
      mkdirSync(dir, { mode });
    } catch (error) {
      // Made by another process meanwhile: a directory is all this asks for.
      const code = codeOf(error) ?? 'EIO';
      if (code !== 'EEXIST' || !isDirectory(dir)) throw refused(code, dir, error);
    }
  }
  return missing[0];
};
