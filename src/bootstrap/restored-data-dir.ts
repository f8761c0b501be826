import { restoredMarkerOf } from '../adapters/backup/data-dir-backup';
import { DATA_FILES } from '../adapters/system/data-dir';
import { ConfigError, type Config } from './config';

/**
 * A hub with a broker configured is not started on a data directory that `rts restore` marked and the operator has
 * not cleared (data-dir-backup.ts): the patients (and consultations' texts) erased after the backup are back in it
 * until `rts erasures apply` repeats those erasures, and the broker side sends at once: the consultation downlink
 * from the backup's checkpoint, offers whose deadlines passed to the next candidate, report resends, held
 * messages, each with those texts, to the city systems' queues. Refused before anything opens (exit 78, as any
 * setting that cannot work here): a service manager does not restart it, and nothing reaches the broker. Without
 * a broker it starts, so that apply can run; `rts restore --done` then clears the marker.
 *
 * Refused rather than started without the broker: a hub started so with its usual settings must be restarted
 * anyway once the marker is cleared, and one that ran "degraded" could be taken for a broker outage and left so.
 */
export const refuseBrokerOnRestoredDataDir = (config: Config): void => {
  const settings = (['RTS_BROKER_URL', 'RTS_BROKER_DISCOVERY'] as const).filter((name) => config[name] !== undefined);
  if (settings.length === 0) return;
  const marker = restoredMarkerOf(config.RTS_DATA_DIR);
  if (marker === null) return;
  // Times only: the backup's path is in the file for the operator, and a path is no place for this message to repeat.
  const since = typeof marker.erasuresNotRepeatedSince === 'string' ? `; a backup of a directory restored from one of ${marker.erasuresNotRepeatedSince}, whose later erasures count too` : '';
  const which = typeof marker.backupCreatedAt === 'string' ? ` (the backup of ${marker.backupCreatedAt}${typeof marker.restoredAt === 'string' ? `, restored ${marker.restoredAt}` : ''}${since})` : '';
  throw new ConfigError([
    `${settings.join(' and ')}: RTS_DATA_DIR holds ${DATA_FILES.restored}: it was restored from a backup${which} and the erasures made after that backup are not marked as repeated; with a broker the hub would send those patients' texts to the city systems at once. ` +
      `Start it without ${settings.join(' and ')} (on 127.0.0.1), run 'rts erasures apply --from SOURCE' for every record of later erasures, then 'rts restore --done --data-dir ${config.RTS_DATA_DIR}', and start it with its broker`,
  ]);
};
