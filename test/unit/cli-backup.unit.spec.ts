// `rts backup` / `rts restore`: the command line alone (the copying itself: test/integration/backup.int.spec.ts and
// test/e2e/backup.e2e.spec.ts).
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BACKUP_HELP, runBackup } from '../../src/adapters/cli/backup';
import { DATA_FILES } from '../../src/adapters/system/data-dir';
import { MAIN_HELP } from '../../src/adapters/cli/args';

const collector = () => {
  let text = '';
  return { write: (s: string) => void (text += s), text: () => text };
};

const usage = async (command: 'backup' | 'restore', argv: string[], env: Record<string, string> = {}) => {
  const stdout = collector();
  const stderr = collector();
  const code = await runBackup(command, argv, { stdout, stderr, env });
  return { code, out: stdout.text(), err: stderr.text() };
};

describe('rts backup / rts restore: the command line', () => {
  it('says what is missing or misplaced, exits 2, and touches nothing', async () => {
    expect(await usage('backup', [])).toEqual({ code: 2, out: '', err: "rts: missing --to: the directory the backup goes into\nRun 'rts backup --help' for usage.\n" });
    expect((await usage('backup', ['--to', '/tmp/x', '--from', '/tmp/y'])).err).toContain('--from belongs to rts restore');
    expect((await usage('restore', ['--data-dir', '/tmp/x'])).err).toContain('missing --from: the backup to restore');
    expect((await usage('restore', ['--from', '/tmp/x', '--to', '/tmp/y'])).err).toContain('--to belongs to rts backup');
    expect((await usage('backup', ['--to'])).err).toContain('option --to needs a value');
    expect((await usage('backup', ['--what'])).err).toContain('unknown option --what');
    expect((await usage('backup', ['somewhere'])).err).toContain('unexpected argument');
  });

  it('takes the data directory from --data-dir, else $RTS_DATA_DIR, else ./data (as the hub does)', async () => {
    const missing = '/nonexistent/rts-data';
    expect((await usage('backup', ['--to', '/tmp/never'], { RTS_DATA_DIR: missing })).err).toBe(`rts: the data directory ${missing} does not exist\n`);
    expect((await usage('backup', ['--to', '/tmp/never', '--data-dir', `${missing}-2`], { RTS_DATA_DIR: missing })).err).toContain(`${missing}-2 does not exist`);
  });

  it('checks before it says it is backing up: a refused backup prints only why (rts backup --to ./data/bk)', async () => {
    expect(await usage('backup', ['--to', '/tmp/never'], { RTS_DATA_DIR: '/nonexistent/rts-data' })).toMatchObject({ code: 2, out: '' });
    const data = mkdtempSync(join(tmpdir(), 'rts-cli-backup-'));
    try {
      writeFileSync(join(data, DATA_FILES.events), '');
      const inside = await usage('backup', ['--to', join(data, 'bk')], { RTS_DATA_DIR: data });
      expect(inside.code).toBe(2);
      expect(inside.err).toContain('lies inside the data directory');
      expect(inside.out).toBe('');
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });

  it('rts restore --done clears only a marker rts restore left, and not while a restore writes there', async () => {
    expect((await usage('restore', ['--done', '--from', '/tmp/x'])).err).toContain('--done clears the marker of a restore done before; it takes no --from');
    expect((await usage('backup', ['--done', '--to', '/tmp/x'])).err).toContain('--done belongs to rts restore');
    const data = mkdtempSync(join(tmpdir(), 'rts-cli-done-'));
    try {
      writeFileSync(join(data, DATA_FILES.events), '');
      expect(await usage('restore', ['--done'], { RTS_DATA_DIR: data })).toEqual({ code: 2, out: '', err: `rts: ${data} holds no ${DATA_FILES.restored}: it is not a directory rts restore wrote, or it was cleared already\n` });
      writeFileSync(join(data, DATA_FILES.restored), '{"backupCreatedAt":"2026-12-01T10:00:00.000Z"}');
      writeFileSync(join(data, DATA_FILES.inProgress), '');
      const writing = await usage('restore', ['--done', '--data-dir', data]);
      expect(writing).toMatchObject({ code: 2, out: '' });
      expect(writing.err).toContain(`holds ${DATA_FILES.inProgress}`);
      expect(existsSync(join(data, DATA_FILES.restored))).toBe(true);
      rmSync(join(data, DATA_FILES.inProgress));
      expect(await usage('restore', ['--done', '--data-dir', data])).toEqual({
        code: 0,
        out: `Cleared ${DATA_FILES.restored} (the backup of 2026-12-01T10:00:00.000Z) from ${data}: a hub may start there with its broker now.\n`,
        err: '',
      });
      expect(existsSync(join(data, DATA_FILES.restored))).toBe(false);
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });

  it('prints its help, lines of at most 80 columns, and is listed in the main help', async () => {
    const help = await usage('restore', ['--help']);
    expect(help).toEqual({ code: 0, out: BACKUP_HELP, err: '' });
    for (const line of BACKUP_HELP.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
    expect(MAIN_HELP).toContain('backup   copy the hub');
  });
});
