import type { Logger } from 'pino';
import type { Clock } from '../application/ports/clock';
import type { EventStore } from '../application/ports/event-store';
import type { IdGenerator } from '../application/ports/id-generator';
import { Projector } from '../application/projector';
import { KeyBookProjection, SystemKeysService } from '../application/security/system-keys-service';
import { checkPublicJwk, hubJwks, loadHubKeys, HubKeysFileError, HUB_KEYS_FILE_NAME, HUB_PARTY_ID, type HubKeys } from '../adapters/crypto/hub-keys';
import { KeyRegistry } from '../adapters/crypto/jose-keys';
import { JoseHubCodec, PlainHubCodec, type HubMessageCodec, type MessageSecurity } from '../adapters/messaging/hub-codec';
import type { DirectoryModule } from './directory-module';
import { ConfigError } from './config';
import { checkHubKeys, HUB_KEYS_STREAM, HubKeysMismatchError, type HubKeysCheck } from '../application/security/hub-keys-check';
import { checkMessageSecurity, MESSAGE_SECURITY_STREAM, MessageSecurityMismatchError } from '../application/security/message-security-check';

/**
 * Composition of message security (issue 5).
 *
 *   const security = await createMessageSecurity({ mode, hubKeysFile, dataDir, store, clock, ids, logger, directory });
 *   registerKeyRoutes(app, { keys: security.keys, hubJwks: security.jwks });
 *   startHubMessaging({ ..., codec: security.codec });
 *   security.start(); ... await security.stop();
 *
 * Always: the hub's keys (RTS_HUB_KEYS_FILE, else generated once into the data dir), the systems' keys service
 * (HTTP registration, events on `system-keys-<id>`), and the in-memory KeyRegistry every hub process rebuilds from
 * those events. The codec is JOSE when `mode` is 'jose', plain JSON when 'off' (keys are still registered, so
 * switching security on later needs no re-registration).
 */
export type MessageSecurityDependencies = Readonly<{
  mode: MessageSecurity;
  hubKeysFile?: string;
  /** Record hub keys that share none with those last recorded in the store instead of refusing them (one start). */
  acceptNewHubKeys?: boolean;
  dataDir: string;
  store: EventStore;
  clock: Clock;
  ids: IdGenerator;
  logger: Logger;
  directory: Pick<DirectoryModule, 'readModel' | 'projector'>;
}>;

export type MessageSecurityModule = Readonly<{
  mode: MessageSecurity;
  hubKeys: HubKeys;
  registry: KeyRegistry;
  keys: SystemKeysService;
  codec: HubMessageCodec;
  projector: Projector;
  jwks(): { keys: readonly object[] };
  start(): void;
  stop(): Promise<void>;
}>;

/**
 * A hub that talks to a broker: its RTS_MESSAGE_SECURITY against the one the store's messaging processes recorded
 * (message-security-check.ts); a mismatch is a ConfigError.
 */
export const checkMessageSecurityOfStore = async (deps: Readonly<{ mode: MessageSecurity; acceptChange: boolean; store: EventStore; clock: Clock; logger: Logger }>): Promise<void> => {
  let outcome: 'recorded' | 'matches' | 'changed';
  try {
    outcome = await checkMessageSecurity(deps.store, deps.mode, deps.clock.now().toUTC().toISO()!, { acceptChange: deps.acceptChange });
  } catch (error) {
    if (!(error instanceof MessageSecurityMismatchError)) throw error;
    throw new ConfigError([
      `RTS_MESSAGE_SECURITY: this store's hub processes message with ${error.recorded}, this one would with ${deps.mode}. ` +
        'Give every hub process on this store that talks to the broker the same RTS_MESSAGE_SECURITY: a process without it dead-letters what the ' +
        'others accept and publishes its downlink copies in clear. To switch the whole deployment, stop every hub and start the first with RTS_MESSAGE_SECURITY_CHANGE=on.',
    ]);
  }
  if (outcome !== 'matches') deps.logger.info({ stream: MESSAGE_SECURITY_STREAM, outcome, mode: deps.mode }, 'message security mode recorded in the store (messaging hub processes on this store must share it)');
};

/** The hub keys against those the store's processes recorded (hub-keys-check.ts); a mismatch is a ConfigError. */
const checkHubKeysOfStore = async (deps: MessageSecurityDependencies, hubKeys: HubKeys, log: Logger): Promise<void> => {
  const mine = { signingKid: hubKeys.keys.signing.kid, encryptionKids: hubKeys.keys.decryption.map((d) => d.kid) };
  let outcome: HubKeysCheck;
  try {
    outcome = await checkHubKeys(deps.store, mine, deps.clock.now().toUTC().toISO()!, { acceptNew: deps.acceptNewHubKeys ?? false });
  } catch (error) {
    if (!(error instanceof HubKeysMismatchError)) throw error;
    const where = deps.hubKeysFile ? `the RTS_HUB_KEYS_FILE given (${hubKeys.file})` : `${hubKeys.file}, which this process generated or found in its data directory`;
    throw new ConfigError([
      `RTS_HUB_KEYS_FILE: this store's hub processes use other message keys than ${where} (the store records their key ids; ` +
        `last: signing ${error.recorded.signingKid}). Give every hub process on this store the same RTS_HUB_KEYS_FILE: a process with other keys ` +
        'cannot open the messages systems encrypt for the others, and dead-letters them. If every hub key was replaced on purpose, start once with RTS_HUB_KEYS_ACCEPT_NEW=on.',
    ]);
  }
  if (outcome !== 'matches') log.info({ stream: HUB_KEYS_STREAM, outcome, hubSigningKid: mine.signingKid }, 'hub message keys recorded in the store (hub processes on this store must share RTS_HUB_KEYS_FILE)');
};

/**
 * Logged (warn) at the start of a hub that talks to a broker with RTS_MESSAGE_SECURITY=off, as RTS_AUTH=off is. Without
 * signatures the envelope's systemId is the only word on who sent a message, and the broker's logins do not back it:
 * ActiveMQ hands an AMQP message's `user_id` on as its sender set it and stamps none
 * (test/integration/broker-sender-identity.int.spec.ts); its populateJMSXUserID, tried by hand on 5.18.3, does not
 * change that for AMQP consumers.
 */
export const MESSAGE_SECURITY_OFF_WARNING =
  'RTS_MESSAGE_SECURITY=off: uplink messages are unsigned and taken as their envelope names the sender; anyone who may send to the uplink queue can act as any registered system ' +
  '(a broker login does not bind the systemId), and downlink messages, consultations among them, cross the broker in clear. Use it only where one party runs every system and the broker';

export const createMessageSecurity = async (deps: MessageSecurityDependencies): Promise<MessageSecurityModule> => {
  const log = deps.logger.child({ component: 'message-security' });
  const hubKeys = await loadHubKeys({ dataDir: deps.dataDir, ...(deps.hubKeysFile ? { file: deps.hubKeysFile } : {}) }).catch((error: unknown) => {
    if (!(error instanceof HubKeysFileError)) throw error;
    const setting = deps.hubKeysFile ? 'RTS_HUB_KEYS_FILE' : 'RTS_DATA_DIR';
    throw new ConfigError([
      `${setting}: ${error.message}.` +
        (deps.hubKeysFile
          ? ' Give every hub process the same file; to make one, see README "Distributed setup: high availability" (hub keys file).'
          : ` Move ${HUB_KEYS_FILE_NAME} away to have a new one made (systems must then fetch the hub's new JWKS).`),
    ]);
  });
  if (deps.mode === 'jose') await checkHubKeysOfStore(deps, hubKeys, log);
  const registry = new KeyRegistry();
  // The hub knows its own public keys too (a hub process may verify what another one signed, e.g. in tests).
  await registry.register(HUB_PARTY_ID, hubKeys.keys.signing.publicJwk);
  for (const d of hubKeys.keys.decryption) await registry.register(HUB_PARTY_ID, d.publicJwk);
  const model = new KeyBookProjection(registry, (error, event) =>
    log.error({ eventId: event.id, code: (error as { code?: unknown })?.code, err: (error as Error)?.message }, 'a registered key was refused (not usable, or registered to another party first); ignored'),
  );
  // Readers of the key book call projector.catchUp() before they look a key up; the background loop may let appends gather.
  const projector = new Projector(deps.store, model, log, 1000, 'system-keys');
  const keys = new SystemKeysService({ store: deps.store, clock: deps.clock, ids: deps.ids, directory: deps.directory.readModel, directoryProjector: deps.directory.projector, check: checkPublicJwk, owners: registry, projector });
  const codec: HubMessageCodec = deps.mode === 'jose' ? new JoseHubCodec(hubKeys.keys, registry, () => projector.catchUp()) : new PlainHubCodec();
  await projector.catchUp();
  log.info({ mode: deps.mode, hubSigningKid: hubKeys.keys.signing.kid, hubEncryptionKid: hubKeys.keys.decryption.at(-1)?.kid }, 'message security');
  return {
    mode: deps.mode,
    hubKeys,
    registry,
    keys,
    codec,
    projector,
    jwks: () => hubJwks(hubKeys),
    start: () => projector.start(),
    stop: () => projector.stop(),
  };
};
