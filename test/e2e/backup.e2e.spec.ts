import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { devToken, startHub, tempDataDir, type HubProcess } from '../support/hub-process';

/**
 * `rts backup` while the built hub takes a stream of uploads, then `rts restore` into a new directory and a hub
 * started on it: every upload acknowledged before the backup began is there, its document opens (its patient's key
 * and the pseudonym secret came along), and nothing is there that was never acknowledged. Every upload is by a
 * patient new to the hub, so each one stores a new key just before its event: a key file copied before the events
 * would miss keys of events in the copy, and those documents would not open.
 */
const CLI = resolve(__dirname, '..', '..', 'dist', 'adapters', 'cli', 'main.js');
const UNTHROTTLED = { RTS_LOG_LEVEL: 'warn', RTS_RATE_LIMIT_PER_SECOND: '100000', RTS_RATE_LIMIT_BURST: '1000000' };
const FROM = '2026-11-19T00:00:00Z';
const TO = '2026-11-26T00:00:00Z';
const T0 = Date.parse('2026-11-20T08:00:00Z');

const rts = (args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((done) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 60_000 }, (error, stdout, stderr) =>
      done({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });

/** A valid CPR number per index (a real birth date in 1930-1959), distinct for i < 9,000. */
const cprOf = (i: number): string =>
  `${String(1 + (i % 28)).padStart(2, '0')}${String(1 + (Math.floor(i / 28) % 12)).padStart(2, '0')}${30 + Math.floor(i / 336)}-${1000 + i}`;

type Acked = { patientId: string; uniqueId: string };

const asPatient = async (url: string, patientId: string): Promise<Record<string, string>> => ({
  authorization: `Bearer ${await devToken(url, { role: 'patient', patient: patientId })}`,
});

describe('rts backup and rts restore (e2e)', () => {
  const data = tempDataDir('rts-backup-data-');
  const backups = tempDataDir('rts-backup-out-');
  let hub: HubProcess | undefined;

  afterAll(async () => {
    await hub?.stop();
    data.remove();
    backups.remove();
  });

  it('backs up a running hub, and a hub on the restored copy has every upload acknowledged before, documents and all', async () => {
    hub = await startHub({ dataDir: data.dir, env: UNTHROTTLED });
    const url = hub.url;
    const acked: Acked[] = [];
    let next = 0;
    let stopping = false;
    const worker = async (): Promise<void> => {
      while (!stopping) {
        const i = next++;
        const patientId = cprOf(i);
        const body = { observationId: randomUUID(), patientId, systolic: 110 + (i % 40), diastolic: 60 + (i % 20), measuredAt: new Date(T0 + i * 1000).toISOString() };
        const res = await fetch(`${url}/observations`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(await asPatient(url, patientId)) },
          body: JSON.stringify(body),
        });
        if (res.status !== 201) throw new Error(`upload answered ${res.status}`);
        acked.push({ patientId, uniqueId: ((await res.json()) as { uniqueId: string }).uniqueId });
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    while (acked.length < 80) await new Promise((r) => setTimeout(r, 10));

    const before = [...acked];
    const target = join(backups.dir, 'b1');
    const backedUp = await rts(['backup', '--data-dir', data.dir, '--to', target]);
    const during = acked.length - before.length;
    while (acked.length < before.length + during + 20) await new Promise((r) => setTimeout(r, 10));
    stopping = true;
    await Promise.all(workers);
    expect(await hub.stop()).toBe(0);
    hub = undefined;

    expect(backedUp.stderr).toBe('');
    expect(backedUp.code).toBe(0);
    expect(backedUp.stdout).toMatch(/^Backing up .*\n  telemed.sqlite .*\n  patient-keys.sqlite .*\n(.|\n)*Done: events up to position \d+/);
    expect(during).toBeGreaterThan(0); // the uploads went on while the backup ran
    // Private: 0700 directory, 0600 files, and only the data directory's files and the manifest in it.
    expect(statSync(target).mode & 0o777).toBe(0o700);
    expect(readdirSync(target).sort()).toEqual(['auth.secret', 'backup.json', 'hub-keys.json', 'patient-keys.sqlite', 'pseudonym.secret', 'telemed.sqlite']);
    for (const name of readdirSync(target)) expect(statSync(join(target, name)).mode & 0o777).toBe(0o600);
    const manifest = JSON.parse(readFileSync(join(target, 'backup.json'), 'utf8')) as { eventsHead: number; files: { name: string }[] };
    expect(manifest.eventsHead).toBeGreaterThanOrEqual(before.length);
    // No personal data in the manifest: no CPR number, no patient key.
    expect(JSON.stringify(manifest)).not.toMatch(/\d{6}-\d{4}/);

    const restoredDir = join(backups.dir, 'restored');
    const restored = await rts(['restore', '--from', target], { RTS_DATA_DIR: restoredDir });
    expect(restored.stderr).toBe('');
    expect(restored.code).toBe(0);
    expect(restored.stdout).toContain(`into ${restoredDir}`);
    for (const name of readdirSync(restoredDir)) expect(statSync(join(restoredDir, name)).mode & 0o777).toBe(0o600);

    hub = await startHub({ dataDir: restoredDir, env: UNTHROTTLED });
    const ackedIds = new Set(acked.map((a) => a.uniqueId));
    const found = new Set<string>();
    // Every patient of the run (each uploaded once): what the restored hub has of them. One whose upload came
    // after the backup is unknown to it (404); one acknowledged before must be known.
    const knownBefore = new Set(before.map((a) => a.patientId));
    for (const { patientId } of acked) {
      const res = await fetch(`${hub.url}/patients/${patientId}/observations?from=${FROM}&to=${TO}`, { headers: await asPatient(hub.url, patientId) });
      expect(knownBefore.has(patientId) ? [200] : [200, 404]).toContain(res.status);
      if (res.status !== 200) continue;
      for (const o of ((await res.json()) as { observations: { uniqueId: string }[] }).observations) found.add(o.uniqueId);
    }
    for (const { uniqueId } of before) expect(found.has(uniqueId)).toBe(true);
    for (const uniqueId of found) expect(ackedIds.has(uniqueId)).toBe(true);
    expect(found.size).toBeLessThan(acked.length); // the backup is of a moment: uploads after it are not in it
    // Every restored document opens: its patient's key is in the restored key file.
    for (const { patientId, uniqueId } of acked.filter((a) => found.has(a.uniqueId))) {
      const res = await fetch(`${hub.url}/documents/${uniqueId}`, { headers: await asPatient(hub.url, patientId) });
      expect(res.status).toBe(200);
      expect(await res.text()).toContain(`<id extension="${patientId}"/>`);
    }
  });

  it('refuses a damaged backup and a target that is not empty, and writes nothing', async () => {
    const target = join(backups.dir, 'b1');
    const nonEmpty = join(backups.dir, 'restored');
    const intoUsed = await rts(['restore', '--from', target, '--data-dir', nonEmpty]);
    expect(intoUsed.code).toBe(2);
    expect(intoUsed.stderr).toContain('is not empty');
    const backupOverUsed = await rts(['backup', '--data-dir', data.dir, '--to', target]);
    expect(backupOverUsed.code).toBe(2);

    // One byte changed in the key file copy: the restore names it and creates nothing.
    const keys = join(target, 'patient-keys.sqlite');
    const bytes = readFileSync(keys);
    bytes[bytes.length - 100] = bytes[bytes.length - 100]! ^ 0xff;
    writeFileSync(keys, bytes);
    const fresh = join(backups.dir, 'fresh');
    const damaged = await rts(['restore', '--from', target, '--data-dir', fresh]);
    expect(damaged.code).toBe(6);
    expect(damaged.stderr).toContain("patient-keys.sqlite does not match the backup's manifest");
    expect(existsSync(fresh)).toBe(false);

    // A manifest cut short: damaged (6), not "not a backup" (2).
    const manifest = join(target, 'backup.json');
    writeFileSync(manifest, readFileSync(manifest).subarray(0, 40));
    const cut = await rts(['restore', '--from', target, '--data-dir', fresh]);
    expect({ code: cut.code, said: cut.stderr.includes('the backup is damaged') }).toEqual({ code: 6, said: true });
    expect(existsSync(fresh)).toBe(false);

    const notData = await rts(['backup', '--data-dir', backups.dir, '--to', join(backups.dir, 'b2')]);
    expect(notData.code).toBe(2);
    expect(notData.stderr).toContain('holds no telemed.sqlite');
    expect(existsSync(join(backups.dir, 'b2'))).toBe(false);
  });
});
