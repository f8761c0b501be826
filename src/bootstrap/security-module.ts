import { createHmac, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { ClinicianScope, Principal } from '../application/access/policy';
import { AuditTrail } from '../application/audit/audit-trail';
import type { ConsultationReadModel } from '../application/consultation/consultation-read-model';
import type { ConsultationService } from '../application/consultation/consultation-service';
import type { ConsultationModule } from './consultation-module';
import { consultationParties, consultationReaders, type ConsultationView } from '../application/consultation/consultation-projection';
import type { PatientErasure } from '../application/patient-erasure';
import type { Clock } from '../application/ports/clock';
import type { EventStore } from '../application/ports/event-store';
import type { AuditEventsByField } from '../application/ports/audit-events-by-field';
import type { PatientKeys } from '../application/ports/patient-keys';
import type { XdsBackend } from '../application/xds-backend';
import { parseCpr } from '../domain/monitoring/cpr';
import { NotFoundError } from '../domain/shared/errors';
import { createTokenVerifier, signToken, systemOfApiKey, type TokenClaims } from '../adapters/auth/tokens';
import { installSecurity } from '../adapters/http/security';
import { DATA_FILES } from '../adapters/system/data-dir';
import type { MetricsRegistry } from '../adapters/metrics/registry';
import {
  checkTokenVerification,
  jwksLocation,
  TOKEN_VERIFICATION_STREAM,
  TokenVerificationMismatchError,
  type TokenVerification,
} from '../application/security/token-verification-check';
import { devLoginEnabled } from './auth-config';
import { reportJwksFetches } from './jwks-reporting';
import { ConfigError, type Config } from './config';
import { makeDirectory } from '../adapters/system/make-directory';
import { readSecretFile } from './secret';
import { writeFileWhole } from '../adapters/system/write-file-whole';
import { AUTH_SECRET_MIN_HEX_DIGITS } from '../adapters/system/secret-text';

/** The hub's HS256 secret if there is one (configured, or the file a hub wrote); null, creating nothing, if not. */
export const existingAuthSecret = (configured: string | undefined, dataDir: string): Buffer | null => {
  if (configured) return Buffer.from(configured, 'hex');
  const file = join(dataDir, DATA_FILES.authSecret);
  // An empty file (cut short at a first start) was taken as a secret of no bytes: the hub started, answered
  // /health ok, and refused every token (dev-login 500).
  return existsSync(file) ? readSecretFile(file, AUTH_SECRET_LOST, AUTH_SECRET_MIN_HEX_DIGITS) : null;
};

const AUTH_SECRET_LOST = 'restore it from your backup, or delete it to have the hub make a new one (every token issued under the old one stops working)';

/** The HS256 secret of the embedded profile: configured, else generated once beside the data (0600). */
export const authSecret = (configured: string | undefined, dataDir: string): Buffer => {
  const existing = existingAuthSecret(configured, dataDir);
  if (existing) return existing;
  const file = join(dataDir, DATA_FILES.authSecret);
  makeDirectory(dataDir);
  const secret = randomBytes(32);
  // Another process wrote it first: that one is the secret.
  if (!writeFileWhole(file, secret.toString('hex'), { exclusive: true })) return readSecretFile(file, AUTH_SECRET_LOST, AUTH_SECRET_MIN_HEX_DIGITS);
  return secret;
};

/** An HS256 secret's fingerprint: an HMAC under it of a fixed text, which tells secrets apart and reveals none. */
export const authSecretFingerprint = (secret: Buffer): string =>
  createHmac('sha256', secret).update('telemed-rts token secret fingerprint v1', 'utf8').digest('hex').slice(0, 32);

/** How this process verifies callers' tokens, as the store records it (token-verification-check.ts). */
export const tokenVerificationOf = (config: Config): TokenVerification => {
  if (config.RTS_AUTH === 'off') return { mode: 'off' };
  const claims = { issuer: config.RTS_AUTH_ISSUER, audience: config.RTS_AUTH_AUDIENCE };
  if (config.RTS_AUTH_JWKS_URL !== undefined) return { mode: 'jwks', ...jwksLocation(config.RTS_AUTH_JWKS_URL), ...claims };
  return { mode: 'hs256', secretFingerprint: authSecretFingerprint(authSecret(config.RTS_AUTH_JWT_SECRET, config.RTS_DATA_DIR)), ...claims };
};

/** The setting an operator changes to make `mine` verify as `recorded` does. */
const settingToAlign = (recorded: TokenVerification, mine: TokenVerification): string => {
  if (recorded.mode !== mine.mode) return recorded.mode === 'off' || mine.mode === 'off' ? 'RTS_AUTH' : 'RTS_AUTH_JWKS_URL';
  if (recorded.mode === 'hs256' && mine.mode === 'hs256' && recorded.secretFingerprint !== mine.secretFingerprint) return 'RTS_AUTH_JWT_SECRET';
  if (recorded.mode === 'jwks' && mine.mode === 'jwks' && (recorded.jwksUrl !== mine.jwksUrl || recorded.jwksQuerySha256 !== mine.jwksQuerySha256)) return 'RTS_AUTH_JWKS_URL';
  return 'RTS_AUTH_ISSUER/RTS_AUTH_AUDIENCE';
};

/**
 * Where hub processes share a store (PostgreSQL, EventStoreDB), this one's token verification against the one
 * they recorded (token-verification-check.ts); a mismatch is a ConfigError. The embedded profile (SQLite) runs
 * one process per store, whose secret lives beside the data: a restart with a new one is how it is rotated there.
 */
export const checkTokenVerificationOfStore = async (deps: Readonly<{ config: Config; store: EventStore; clock: Clock; logger: Logger }>): Promise<void> => {
  const { config } = deps;
  if (config.RTS_EVENT_STORE === 'sqlite') return;
  const mine = tokenVerificationOf(config);
  let outcome: 'recorded' | 'matches' | 'changed';
  try {
    outcome = await checkTokenVerification(deps.store, mine, deps.clock.now().toUTC().toISO()!, { acceptChange: config.RTS_AUTH_CHANGE === 'on' });
  } catch (error) {
    if (!(error instanceof TokenVerificationMismatchError)) throw error;
    throw new ConfigError([
      `${settingToAlign(error.recorded, error.mine)}: ${error.message}. Give every hub process on this store the same RTS_AUTH, RTS_AUTH_JWT_SECRET ` +
        '(or RTS_AUTH_JWKS_URL), RTS_AUTH_ISSUER and RTS_AUTH_AUDIENCE: behind one address, a process that verifies otherwise refuses the tokens the ' +
        'others accept, or, with RTS_AUTH=off, lets anyone in. To change it for the whole deployment, stop every hub and start the first with RTS_AUTH_CHANGE=on.',
    ]);
  }
  if (outcome !== 'matches') deps.logger.info({ stream: TOKEN_VERIFICATION_STREAM, outcome, mode: mine.mode }, 'token verification recorded in the store (hub processes on this store must share it)');
};

export const DEV_TOKEN_TTL_SECONDS = 8 * 3600;

export type SecurityModuleDependencies = Readonly<{
  config: Config;
  logger: Logger;
  store: EventStore;
  /** The store's indexes of audit events by patient and subject, when it has them (the container's auditEventsByField). */
  auditEventsByField?: AuditEventsByField;
  clock: Clock;
  patientKeys: PatientKeys;
  xds: XdsBackend;
  /** POST /erasures and the deprecated DELETE /patients/{id} (the container's TOKENS.PatientErasure). */
  erasure: PatientErasure;
  /** The consultation read model, when the consultation context runs: clinicians' access follows it. */
  /**
   * The consultations as they are now: reads caught up with the events appended so far (see `caughtUpConsultations`).
   * The read model as the background projector last left it answered a consultation stored a moment ago as absent,
   * and the access check let the route, whose own read caught up, serve it to anyone.
   */
  consultations?: () => ConsultationReading | undefined;
  onAuditFailure?: () => void;
  /** The hub's /metrics: audit events dropped, whether the trail can be written, reads refused for it. */
  metrics?: MetricsRegistry;
}>;

/**
 * The claims of a verified token as a principal. A patient's key is the token's patientKey (the hub's own tokens),
 * or the pseudonymous key of its patient claim (an identity provider's, which knows the CPR number), made here.
 */
export const principalOf = (claims: TokenClaims, patientKeys: PatientKeys, via: Principal['via']): Principal => {
  let patientKey: string | undefined;
  if (claims.role === 'patient') {
    try {
      // Ten digits (as many identity providers give it) are the same number as ddmmyy-ssss.
      const cpr = claims.patient?.replace(/^(\d{6})(\d{4})$/, '$1-$2');
      patientKey = claims.patientKey ?? (cpr ? patientKeys.keyFor(parseCpr(cpr)) : undefined);
    } catch {
      patientKey = undefined; // a patient token without a valid CPR number reaches no patient's data
    }
  }
  return { subject: claims.sub, role: claims.role, via, ...(patientKey ? { patientKey } : {}), ...(claims.systemId ? { systemId: claims.systemId } : {}) };
};

// consultationReaders lives beside consultationParties (the HTTP routes answer by it too); re-exported here.
export { consultationReaders } from '../application/consultation/consultation-projection';

/**
 * What the access checks read of the consultations; `patientKeysOfView` (ConsultationService.patientKeysOfView): the patients
 * an access to one is audited under.
 */
export type ConsultationReading = Pick<ConsultationReadModel, 'get' | 'list'> & Partial<Pick<ConsultationService, 'patientKeysOfView'>>;

/** The read model's `get` and `list`, each on the model caught up first (Projector.read), as the routes read it. */
export const caughtUpConsultations = (module: Pick<ConsultationModule, 'readModel' | 'projector' | 'service'>): ConsultationReading => ({
  get: (id) => module.projector.read(() => module.readModel.get(id)),
  list: (query) => module.projector.read(() => module.readModel.list(query)),
  patientKeysOfView: (view) => module.service.patientKeysOfView(view),
});

/**
 * The statuses in which a consultation is with its expert: offered (the open offer), accepted, reported. In the
 * order a case moves through them, and read in that order: a case that moves on between two reads is found by the
 * later one, so none is missed for a request.
 */
const WITH_EXPERT = ['offered', 'accepted', 'reported'] as const;

/**
 * Documents attached to the consultations now with a system's experts, and their patients. Not once the case is
 * closed (acknowledged, cancelled, unassigned): the access ended with it. Only those cases are read (by status),
 * every one of them: it read the system's latest 10,000 cases of any status and kept the open ones, so a system
 * with that many closed cases lost, unseen, its clinicians' access to its older open ones.
 */
export const consultationScope = async (consultations: ConsultationReading | undefined, xds: XdsBackend, systemId: string): Promise<ClinicianScope> => {
  const uniqueIds = new Set<string>();
  const patientKeys = new Set<string>();
  if (!consultations) return { uniqueIds, patientKeys };
  for (const status of WITH_EXPERT) {
    let before: { requestedAt: string; consultationId: string } | undefined;
    for (;;) {
      const page = await consultations.list({ systemId, role: 'expert', status, limit: 500, ...(before ? { before } : {}) });
      for (const c of page.items) if (c.status === status) for (const id of c.attachments) uniqueIds.add(id);
      const last = page.items[page.items.length - 1];
      if (!page.hasMore || !last) break;
      before = { requestedAt: last.requestedAt, consultationId: last.consultationId };
    }
  }
  for (const id of uniqueIds) {
    const entry = await xds.entry(id).catch(() => null);
    if (entry) patientKeys.add(entry.patientKey);
  }
  return { uniqueIds, patientKeys };
};

/**
 * The patient a document belongs to, for the access check of its routes: null only when no document has this id
 * (the route then answers 404 document_not_found to everyone). A registry that cannot be read now throws, and the
 * request is answered 503 unserved: read as "no such document", the check let the request through without asking
 * who may read it, and when the route's own read then worked it served another patient's document.
 */
export const documentPatientKeyIn =
  (xds: Pick<XdsBackend, 'entry'>) =>
  async (uniqueId: string): Promise<string | null> => {
    try {
      return (await xds.entry(uniqueId)).patientKey;
    } catch (e) {
      if (e instanceof NotFoundError) return null;
      throw e;
    }
  };

export type SecurityModule = Readonly<{ install(app: FastifyInstance): void; audit: AuditTrail; erasure: PatientErasure; close(): Promise<void> }>;

export const createSecurityModule = (deps: SecurityModuleDependencies): SecurityModule => {
  const { config, logger } = deps;
  const dropped = deps.metrics?.counter('rts_audit_dropped_total', 'Audit events that could not be stored (the append failed after its retries, or the queue was full)');
  const writable = deps.metrics?.gauge('rts_audit_writable', 'Whether the audit trail can be written (1) or its last append failed and reads of patient data are refused with 503 audit_unavailable (0)');
  const refusedReads = deps.metrics?.counter('rts_audit_unavailable_reads_total', 'Reads of patient data refused (503 audit_unavailable) because the audit trail could not be written');
  dropped?.inc({}, 0);
  refusedReads?.inc({}, 0);
  writable?.set({}, 1);
  const audit = new AuditTrail({
    store: deps.store,
    eventsByField: deps.auditEventsByField,
    logger,
    onDropped: (count) => {
      dropped?.inc({}, count);
      deps.onAuditFailure?.();
    },
    onUnwritable: (unwritable) => writable?.set({}, unwritable ? 0 : 1),
  });
  const erasure = deps.erasure;
  const secret = config.RTS_AUTH_JWKS_URL === undefined ? authSecret(config.RTS_AUTH_JWT_SECRET, config.RTS_DATA_DIR) : null;
  const verify = createTokenVerifier({
    issuer: config.RTS_AUTH_ISSUER,
    audience: config.RTS_AUTH_AUDIENCE,
    ...(secret
      ? { secret }
      : { jwksUrl: config.RTS_AUTH_JWKS_URL!, jwksMaxStaleMs: config.RTS_AUTH_JWKS_MAX_STALE_SECONDS * 1000, onJwksFetch: reportJwksFetches(logger, deps.metrics) }),
  });
  // The principal of a token the verifier remembers (it hands back the same claims object while it does): one
  // HMAC of the patient's CPR number per token instead of one per request (an identity provider's patient claim). Weak: it goes when the claims go.
  const principals = new WeakMap<TokenClaims, Principal>();
  const devLogin = devLoginEnabled(config) && secret !== null;
  if (config.RTS_AUTH === 'off') logger.warn('RTS_AUTH=off: access control is disabled; every caller may read and change all data');
  if (devLogin) {
    // Say why it is on: by default only for the embedded profile on loopback; set on by hand, it serves any address.
    const why = config.RTS_AUTH_DEV_LOGIN === 'on' ? `RTS_AUTH_DEV_LOGIN=on, on ${config.RTS_HTTP_HOST}` : 'embedded profile on loopback';
    logger.warn(`POST /auth/dev-login is enabled (${why}): it hands out tokens for any role to anyone who reaches this address; set RTS_AUTH_DEV_LOGIN=off to disable`);
  }
  const apiKeys = config.RTS_API_KEYS ?? {};
  // Anchors: the chains' heads, logged where the store cannot rewrite them (the log collector), so a later
  // POST /audit/verify can show a chain cut back at its tail. Hashes and stream names only. Yesterday's chains too
  // (anchorHeads): the first anchor after midnight holds the end of the day before.
  const logAnchor = async () => {
    const heads = await audit.anchorHeads(deps.clock.now().toJSDate()).catch(() => null);
    // At every level but silent, as the erasure lines: RTS_LOG_LEVEL=warn dropped them, and nothing said so.
    if (heads && Object.keys(heads).length > 0 && logger.level !== 'silent') logger.child({}, { level: 'info' }).info({ auditAnchor: heads }, 'audit anchor');
  };
  const anchorTimer = config.RTS_AUDIT_ANCHOR_SECONDS > 0 ? setInterval(() => void logAnchor(), config.RTS_AUDIT_ANCHOR_SECONDS * 1000) : undefined;
  anchorTimer?.unref();
  return {
    audit,
    erasure,
    install: (app) =>
      installSecurity(app, {
        mode: config.RTS_AUTH,
        verifyBearer: async (token) => {
          const claims = await verify(token);
          let principal = principals.get(claims);
          if (principal === undefined) principals.set(claims, (principal = principalOf(claims, deps.patientKeys, 'jwt')));
          return principal;
        },
        systemOfApiKey: (key) => systemOfApiKey(apiKeys, key),
        ...(devLogin
          ? {
              devLogin: async (claims) => ({
                token: await signToken(secret!, claims, { issuer: config.RTS_AUTH_ISSUER, audience: config.RTS_AUTH_AUDIENCE, ttlSeconds: DEV_TOKEN_TTL_SECONDS }),
                expiresIn: DEV_TOKEN_TTL_SECONDS,
              }),
            }
          : {}),
        rateLimit: { perSecond: config.RTS_RATE_LIMIT_PER_SECOND, burst: config.RTS_RATE_LIMIT_BURST },
        patientKeyOf: (cpr) => deps.patientKeys.keyFor(cpr),
        documentPatientKey: documentPatientKeyIn(deps.xds),
        clinicianScope: (systemId) => consultationScope(deps.consultations?.(), deps.xds, systemId),
        consultationSystems: async (id) => {
          const consultations = deps.consultations?.();
          const c = await consultations?.get(id);
          if (!c) return null;
          return { readers: consultationReaders(c), parties: consultationParties(c), patientKeys: (await consultations?.patientKeysOfView?.(c)) ?? [] };
        },
        audit,
        erasure,
        now: () => deps.clock.now().toJSDate(),
        ...(deps.onAuditFailure ? { onAuditFailure: deps.onAuditFailure } : {}),
        ...(refusedReads ? { onAuditUnavailable: () => refusedReads.inc() } : {}),
      }),
    close: async () => {
      if (anchorTimer) clearInterval(anchorTimer);
      await audit.drain();
      if (anchorTimer) await logAnchor(); // the last heads before the process goes
      await audit.close();
    },
  };
};
