import { mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDirectory } from '../../src/adapters/system/make-directory';

/** `mkdir -p` that fails where Node 20's recursive mkdir never returns (a parent refusing entries, as /proc does). */
describe('makeDirectory', () => {
  let root: string;
  beforeEach(() => (root = mkdtempSync(join(tmpdir(), 'rts-mkdir-'))));
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('makes the missing parents with the mode and returns the first one made; undefined when it exists', () => {
    const deep = join(root, 'a', 'b', 'c');
    expect(makeDirectory(deep)).toBe(join(root, 'a'));
    for (const dir of [join(root, 'a'), join(root, 'a', 'b'), deep]) expect(statSync(dir).mode & 0o777).toBe(0o700 & ~process.umask());
    expect(makeDirectory(deep)).toBeUndefined();
    expect(makeDirectory(root)).toBeUndefined();
  });

  it("throws at once for a parent that refuses new entries (/proc), naming the code and the path asked for", () => {
    expect(() => makeDirectory('/proc/rts-no-such/data')).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'mkdir', path: '/proc/rts-no-such/data' }));
  });

  it('says EEXIST for a file where the directory should be and ENOTDIR for a file among its parents, as Node does', () => {
    writeFileSync(join(root, 'a-file'), '');
    expect(() => makeDirectory(join(root, 'a-file'))).toThrow(expect.objectContaining({ code: 'EEXIST', path: join(root, 'a-file') }));
    expect(() => makeDirectory(join(root, 'a-file', 'data'))).toThrow(expect.objectContaining({ code: 'ENOTDIR', path: join(root, 'a-file', 'data') }));
  });

  it('refuses a dangling symbolic link with its code, not a raw error of another path', () => {
    symlinkSync(join(root, 'gone', 'deeper'), join(root, 'dangling'));
    expect(() => makeDirectory(join(root, 'dangling'))).toThrow(expect.objectContaining({ code: 'EEXIST', path: join(root, 'dangling') }));
  });
});
