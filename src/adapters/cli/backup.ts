import { BackupError, backupDataDir, clearRestoredMarker, erasuresToRepeatSince, restoreDataDir, type BackupManifest } from '../backup/data-dir-backup';
import { DATA_FILES } from '../system/data-dir';
import { UsageError, fail, parseFlags } from './args';
import { BACKUP_EXIT_CODES_HELP, EXIT, type ExitCode } from './exit-codes';
import type { Output } from './run';

/**
 * `rts backup` and `rts restore`: the embedded profile's data directory, copied on the hub's host while the hub
 * runs (see data-dir-backup.ts), and put back into an empty directory. They work on files, not over HTTP: whoever
 * may read the data directory may back it up, and nobody else.
 */
export const BACKUP_HELP = `Usage:
  rts backup --to DIR [--data-dir DIR]
  rts restore --from DIR [--data-dir DIR]
  rts restore --done [--data-dir DIR]

  backup    copy the hub's data directory into a new or empty directory, while
            the hub runs: the event store and the key file as of one moment
            each (key file after events), the secrets beside them, and a
            manifest (backup.json) of sizes and SHA-256 hashes
  restore   check a backup against its manifest, then write it into a data
            directory that does not exist yet or is empty, marked with
            restored-from-backup.json: a hub with a broker configured
            (RTS_BROKER_URL, RTS_BROKER_DISCOVERY) refuses to start there
            (exit 78) until the marker is cleared; without one it starts
  restore --done
            clear that marker, once every erasure made after the backup is
            repeated (below): then start the hub with its broker

Options:
  --to DIR         where the backup goes (created; must be new or empty)
  --from DIR       the backup to restore
  --done           clear the restored directory's marker (restore only)
  --data-dir DIR   the hub's data directory (default: $RTS_DATA_DIR, or ./data)
  -h, --help       this text

A backup holds the patients' data and the keys that open it: keep it as private
as the data directory (its files are 0600 in a 0700 directory), and not longer
than needed: a patient erased after a backup is back when it is restored, and
must be erased again: start the hub on the restored directory (on 127.0.0.1
only, without a broker) and run 'rts erasures apply --from SOURCE' for each
record of the later erasures (the old data directory, a newer backup, a saved
GET /erasures, or the hub's log: see 'rts erasures --help'); then run
'rts restore --done' and restart the hub with its usual settings.

${BACKUP_EXIT_CODES_HELP}
`;

export type BackupDependencies = Readonly<{
  stdout: Output;
  stderr: Output;
  env: Readonly<Record<string, string | undefined>>;
  now?: () => Date;
}>;

type Parsed =
  | Readonly<{ kind: 'help' }>
  | Readonly<{ kind: 'backup'; dataDir: string; to: string }>
  | Readonly<{ kind: 'restore'; dataDir: string; from: string }>
  | Readonly<{ kind: 'done'; dataDir: string }>;

const OPTIONS = { to: { type: 'string' }, from: { type: 'string' }, done: { type: 'boolean' }, 'data-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const;

/** The flags (args.ts's parseFlags: its wording, no typed value repeated); a UsageError for what is wrong. */
const parse = (command: 'backup' | 'restore', argv: readonly string[], env: BackupDependencies['env']): Parsed => {
  const values = parseFlags(argv, OPTIONS);
  if (values.help) return { kind: 'help' };
  const dataDir = values['data-dir'] || env.RTS_DATA_DIR || './data';
  if (command === 'backup') {
    if (values.done) fail('--done belongs to rts restore');
    if (values.from !== undefined) fail('--from belongs to rts restore; rts backup takes --to');
    if (!values.to) return fail('missing --to: the directory the backup goes into');
    return { kind: 'backup', dataDir, to: values.to };
  }
  if (values.to !== undefined) fail('--to belongs to rts backup; rts restore takes --from');
  if (values.done) {
    if (values.from !== undefined) fail('--done clears the marker of a restore done before; it takes no --from');
    return { kind: 'done', dataDir };
  }
  if (!values.from) return fail('missing --from: the backup to restore');
  return { kind: 'restore', dataDir, from: values.from };
};

const size = (bytes: number): string => (bytes < 1024 ? `${bytes} B` : bytes < 1 << 20 ? `${Math.round(bytes / 1024)} KiB` : `${(bytes / (1 << 20)).toFixed(1)} MiB`);

const line = (f: BackupManifest['files'][number]): string => `  ${f.name.padEnd(22)} ${size(f.bytes).padStart(10)}  sha256 ${f.sha256.slice(0, 16)}…`;
const listed = (manifest: BackupManifest): string => manifest.files.map(line).join('\n');

/** What a BackupError means for the exit code: a wrong directory given is a usage error; damage is not. */
const exitOf = (error: BackupError): ExitCode => (error.code === 'damaged' || error.code === 'check_failed' ? EXIT.files : EXIT.usage);

/** `rts backup ...` / `rts restore ...` (argv after the command word); resolves with the exit code, never throws. */
export const runBackup = async (command: 'backup' | 'restore', argv: readonly string[], deps: BackupDependencies): Promise<ExitCode> => {
  let parsed: Parsed;
  try {
    parsed = parse(command, argv, deps.env);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    deps.stderr.write(`rts: ${e.message}\nRun 'rts ${command} --help' for usage.\n`);
    return EXIT.usage;
  }
  try {
    if (parsed.kind === 'help') {
      deps.stdout.write(BACKUP_HELP);
      return EXIT.ok;
    }
    if (parsed.kind === 'backup') {
      // Said once the data directory and the target are found right: a refused backup prints only why (exit 2).
      const onStart = () => void deps.stdout.write(`Backing up ${parsed.dataDir} into ${parsed.to}:\n`);
      const { manifest, missing } = await backupDataDir(parsed.dataDir, parsed.to, { ...(deps.now ? { now: deps.now } : {}), onStart, onCopied: (f) => void deps.stdout.write(`${line(f)}\n`) });
      deps.stdout.write(`Done: events up to position ${manifest.eventsHead}, manifest in backup.json.\n`);
      if (manifest.restoredFrom) {
        const since = manifest.restoredFrom.backupCreatedAt;
        deps.stderr.write(
          `rts: ${parsed.dataDir} holds ${DATA_FILES.restored}${since === null ? '' : ` (the backup of ${since})`}: the erasures made after that backup are not repeated in it, nor in this backup; ` +
            `its manifest says so, and a restore of it tells to repeat the erasures made since ${since ?? 'that earlier backup'}.\n`,
        );
      }
      if (missing.length > 0) {
        const pseudonym = missing.includes(DATA_FILES.pseudonymSecret);
        deps.stderr.write(
          `rts: not in the data directory, so not in the backup: ${missing.join(', ')} (given to the hub through its configuration instead). Keep those values with the backup${pseudonym ? `: without the pseudonym secret no patient's data can be found again` : ''}.\n`,
        );
      }
      return EXIT.ok;
    }
    if (parsed.kind === 'done') {
      const marker = clearRestoredMarker(parsed.dataDir);
      const of = typeof marker.backupCreatedAt === 'string' ? ` (the backup of ${marker.backupCreatedAt})` : '';
      deps.stdout.write(`Cleared ${DATA_FILES.restored}${of} from ${parsed.dataDir}: a hub may start there with its broker now.\n`);
      return EXIT.ok;
    }
    const manifest = await restoreDataDir(parsed.from, parsed.dataDir, deps.now ? { now: deps.now } : {});
    // A backup of a directory restored before and not cleared: the erasures since that earlier backup are not repeated.
    const since = erasuresToRepeatSince(manifest);
    const erasedAfter = since ?? `an earlier backup (${parsed.from} is a backup of a directory restored from it, which did not say when it was made)`;
    deps.stdout.write(
      `Restored the backup of ${manifest.createdAt} (events up to position ${manifest.eventsHead}) into ${parsed.dataDir}:\n${listed(manifest)}\n` +
        `Start the hub with RTS_DATA_DIR=${parsed.dataDir}, on 127.0.0.1 and without RTS_BROKER_URL or RTS_BROKER_DISCOVERY (with one it refuses to start: ${DATA_FILES.restored} marks the directory). Patients erased after ${erasedAfter} are back in it: before anyone else reaches the hub, ` +
        `repeat those erasures with 'rts erasures apply --from SOURCE' for each record of them (the old data directory, a newer backup, a saved GET /erasures, or the hub's log; see 'rts erasures --help'). ` +
        `Then run 'rts restore --done --data-dir ${parsed.dataDir}' and restart the hub with its usual settings.\n`,
    );
    if (!manifest.files.some((f) => f.name === DATA_FILES.pseudonymSecret)) {
      deps.stderr.write(
        `rts: the backup holds no ${DATA_FILES.pseudonymSecret} (the hub had it from RTS_PSEUDONYM_SECRET): start the hub with the same value, or it finds no patient's data (it refuses to start with another).\n`,
      );
    }
    return EXIT.ok;
  } catch (e) {
    if (e instanceof BackupError) {
      deps.stderr.write(`rts: ${e.message}\n`);
      return exitOf(e);
    }
    const error = e as NodeJS.ErrnoException;
    // A file the system would not read or write (permissions, disk full): its message names the path and the cause.
    deps.stderr.write(`rts: the ${parsed.kind === 'done' ? 'restore --done' : parsed.kind} could not be done, and nothing half-written was left: ${error?.message ?? String(e)}\n`);
    return EXIT.files;
  }
};
