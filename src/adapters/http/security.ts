import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { authorize, concernsPatientData, type Action, type ClinicianScope, type Principal } from '../../application/access/policy';
import { AUDIT_PARTITIONS, type AuditEntry, type AuditOutcome } from '../../application/audit/audit-chain';
import { MAX_AUDIT_DAYS_WALKED, startOfUtcDayMillis, verifyDaysOf, type AuditPage, type AuditSearch, type AuditTrail } from '../../application/audit/audit-trail';
import { NotFoundError, ValidationError } from '../../domain/shared/errors';
import { ErasureIncompleteError, type ErasureResult, type PatientErasure } from '../../application/patient-erasure';
import { parseCpr, type Cpr } from '../../domain/monitoring/cpr';
import { mayHoldCprDigits } from '../../domain/monitoring/cpr-like';
import { homeSystemOf } from '../../domain/consultation/consultation';
import { isExistingConsultationId } from '../../domain/consultation/legacy-id';
import { SYSTEM_ID_PATTERN } from '../../domain/directory/connected-system';
import { AuthUnavailableError, ISSUED_AT_SKEW_MS, SUB_IS_CPR, SYSTEM_ID_IS_CPR, holdsCprNumber, patientSubject } from '../auth/tokens';
import { logErasure } from '../backup/erasure-log-line';
import { decodeAuditCursor, encodeAuditCursor, type AuditQueryKey } from './audit-cursor';
import { AcceptBody, ApplicantBody, ConsultationBody, ConsultationsQuery } from './consultation-routes';
import { auditUnderPatients } from './audit-patients';
import { RETRY_AFTER_SECONDS, problem, sendProblem } from './problem';
import { RateLimiter } from './rate-limiter';
import { DocumentParams, isXml, parseInput } from './schemas';
import {
  AuditQuery,
  AuditRequestId,
  AuditResource,
  AuditSearchBody,
  AuditVerifyBody,
  AuditVerifyQuery,
  DOCUMENT_ID,
  DevLoginBody,
  ErasureBody,
  ErasureByKeyParams,
  ErasureParams,
  ErasureQuery,
  ErasuresQuery,
  MAX_ERASURES_PAGE,
  REQUEST_ID_RULE,
  RESOURCE_RULE,
} from './security-schemas';

/**
 * Access control, rate limits and the audit trail of the HTTP API, installed on the app before any route:
 *
 *   onRequest   authenticate (Authorization: Bearer <JWT>, or X-Api-Key for a connected system) -> 401
 *               unauthenticated (503 auth_unavailable when a bearer token cannot be checked at all); then the caller's token bucket -> 429 rate_limited with Retry-After (audited here,
 *               summed per caller and second: RateLimitAudit)
 *   preHandler  authorize the route's action on its resource (the pure policy in application/access/policy.ts)
 *               -> 403 forbidden; for a document the caller may not read: 404 document_not_found, the same answer
 *               as for a document that does not exist (no oracle for valid uniqueIds); for a consultation a caller
 *               without a part in it may not read: 404 consultation_not_found, likewise
 *   onSend      an audit event for every request touching patient data and every refusal (who, what, when,
 *               from where, outcome). Reads do not wait for it; writes (POST, DELETE) answer only once it is stored.
 *
 * Public: /health, /openapi.json, /problems/*, /app/* (the page's static files), POST /auth/dev-login (when on).
 * Also registered here: POST /auth/dev-login, POST /erasures, PUT /erasures/{patientKey}, GET /erasures (erasure), POST
 * /audit/search, GET and POST /audit/verify; and the deprecated DELETE /patients/{id} and GET /audit (their CPR number
 * in the URL). Their request shapes: security-schemas.ts.
 */
export type SecurityDependencies = Readonly<{
  mode: 'on' | 'off';
  /** Verifies a bearer token and maps its claims to a principal (the patient claim becomes the pseudonymous key). */
  verifyBearer?: (token: string) => Promise<Principal>;
  /** The system an API key belongs to, or null. */
  systemOfApiKey?: (key: string) => string | null;
  /**
   * POST /auth/dev-login, when enabled: a signed token for the given claims. A patient is named by their pseudonymous
   * key, never by the CPR number: a token travels (a #token= link in a browser's history, RTS_TOKEN in an
   * environment) and whoever holds it reads what it holds.
   */
  devLogin?: (claims: { sub: string; role: Principal['role']; patientKey?: string; systemId?: string }) => Promise<{ token: string; expiresIn: number }>;
  rateLimit: Readonly<{ perSecond: number; burst: number }>;
  patientKeyOf: (patientId: Cpr) => string;
  /** The pseudonymous key of a document's patient (registry), or null when there is no such document. */
  documentPatientKey: (uniqueId: string) => Promise<string | null>;
  /** The documents and patients of consultations offered to a system's experts. */
  clinicianScope: (systemId: string) => Promise<ClinicianScope>;
  /**
   * The systems of a consultation, or null when there is none: `readers`, who may read it now (the applicant, the
   * system of the expert it is with), and `parties`, who know it exists (also the systems whose experts' offers ended).
   */
  consultationSystems?: (
    consultationId: string,
  ) => Promise<Readonly<{ readers: readonly string[]; parties: readonly string[]; /** The patients it is about: its accesses are audited under their keys. */ patientKeys: readonly string[] }> | null>;
  audit: AuditTrail;
  erasure: PatientErasure;
  now: () => Date;
  onAuditFailure?: () => void;
  /** Called for each read of patient data refused because the audit trail cannot be written (metrics). */
  onAuditUnavailable?: () => void;
}>;

/**
 * What no one may be told more of than that it does not exist: answered 404 here, before the route, for everyone. The
 * route reading again found, in the moment between, a document or consultation stored since, and served it unchecked.
 */
type Absent = Readonly<{ absent: 'document_not_found' | 'consultation_not_found' }>;
const ABSENT_DETAIL = { document_not_found: 'no document has this uniqueId', consultation_not_found: 'no consultation has this id' } as const;
type Rule = (request: FastifyRequest, principal: Principal) => Promise<Action | Absent | 'pass'>;

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
    audited?: {
      action: string;
      patientKey: string | null;
      resource: string | null;
      reason: string | null;
      patientData: boolean;
      /**
       * Further patients the answer concerns (a consultation of several patients, the consultations of a list): the
       * entry is recorded once more under each key, naming that resource, so each patient's export lists it.
       */
      alsoUnder?: { patientKey: string; resource: string | null }[];
    };
  }
}

// The hub's public message keys are public by nature: systems fetch them before they have any credential.
const PUBLIC = new Set(['GET /.well-known/jwks.json', 'GET /', 'GET /health', 'GET /openapi.json', 'GET /problems/:code', 'POST /auth/dev-login']);
const isPublic = (method: string, route: string): boolean => PUBLIC.has(`${method} ${route}`) || route === '/app' || route.startsWith('/app/');
/**
 * The method a request's access rule and audit are looked up by. fastify answers HEAD for every GET route with the
 * GET's handler (headers, length and ETag included), so a HEAD is the GET it stands for: the same rule, the same audit.
 */
const ruleMethod = (request: FastifyRequest): string => (request.method === 'HEAD' ? 'GET' : request.method);

const keyOfRaw = (deps: SecurityDependencies, raw: unknown): string | null => {
  try {
    return typeof raw === 'string' ? deps.patientKeyOf(parseCpr(raw)) : null;
  } catch {
    return null;
  }
};

/**
 * Whether a Host header names this machine without a DNS name another party controls: localhost (and its
 * subdomains, RFC 6761), an IPv4 address or a bracketed IPv6 address, with an optional port; or no Host at all.
 */
export const isLiteralHost = (host: string | undefined): boolean => {
  if (host === undefined) return true;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d*$/, '');
  if (name.startsWith('[')) return /^\[[0-9A-Fa-f:.]+\]$/.test(name) && host.slice(name.length).match(/^(:\d*)?$/) !== null;
  return /^(localhost|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.localhost)\.?$/i.test(name) || /^\d{1,3}(\.\d{1,3}){3}$/.test(name);
};

/**
 * Headers by which a proxy says it forwarded a request (dev-login refuses such a request): Forwarded, Via, every
 * X-Forwarded-* (Apache's mod_proxy adds X-Forwarded-Server, others X-Forwarded-Port or -Prefix, each alone at times),
 * and the client-address headers of common proxies, CDNs and ingresses. Node gives header names in lower case.
 */
const FORWARDING_HEADER =
  /^(forwarded|via|x-real-ip|x-forwarded-.+|x-original-forwarded-.+|x-client-ip|x-cluster-client-ip|cf-connecting-ip(v6)?|true-client-ip|fastly-client-ip|x-envoy-external-address)$/;
/** Whether a request carries a header by which a proxy says it forwarded it (FORWARDING_HEADER), whatever its value. */
export const cameThroughProxy = (headers: Readonly<Record<string, unknown>>): boolean =>
  Object.keys(headers).some((name) => FORWARDING_HEADER.test(name.toLowerCase()));

const field = (value: unknown, name: string): unknown => (value && typeof value === 'object' ? (value as Record<string, unknown>)[name] : undefined);
const str = (value: unknown): string => (typeof value === 'string' ? value : '');

/** The action each route performs, from its params, query and (parsed) body. */
const rules = (deps: SecurityDependencies): Record<string, Rule> => {
  const patientRoute = (kind: 'observations.read' | 'observations.write', from: 'params' | 'body'): Rule => async (request, principal) => {
    const key = keyOfRaw(deps, field(from === 'params' ? request.params : request.body, 'patientId'));
    // An invalid CPR number: a patient gets the validation problem from the route; anyone else is refused first.
    if (key === null) return principal.role === 'patient' ? 'pass' : { kind, patientKey: '' };
    return { kind, patientKey: key };
  };
  const documentRoute = (kind: 'document.read' | 'document.correct'): Rule => async (request) => {
    const uniqueId = str(field(request.params, 'uniqueId'));
    const key = await deps.documentPatientKey(uniqueId);
    // For everyone, whatever the body; an id no document can have is the route's 400 (it reads nothing).
    if (key === null) return DocumentParams.safeParse(request.params).success ? { absent: 'document_not_found' } : 'pass';
    return { kind, patientKey: key, uniqueId };
  };
  // A role that never acts for a system (a patient, an operator) is refused before the body is read: it was told
  // which fields the request lacked (400) instead of 403.
  // A step on an existing consultation answers its texts: audited under its patients' keys (consultationPatients).
  const consultationAct = (systemOf: (request: FastifyRequest) => string): Rule => async (request, principal) => ({
    kind: 'consultation.act',
    systemId: principal.role === 'system' || principal.role === 'clinician' ? systemOf(request) : '',
    patientKeys: await consultationPatients(request),
  });
  /** The patients of the consultation a request names ([] for none, or one that does not exist). */
  const consultationPatients = async (request: FastifyRequest): Promise<readonly string[]> => {
    const id = str(field(request.params, 'id'));
    return id && isExistingConsultationId(id) ? ((await deps.consultationSystems?.(id))?.patientKeys ?? []) : [];
  };
  /**
   * The field that names who acts, checked as the route checks it: missing or malformed, it is the caller's
   * mistake (400 invalid_request, the route's own problem, not audited), not a refusal of someone else's system.
   */
  const actor = (where: 'body' | 'query', name: string, schema: z.ZodString) => (request: FastifyRequest): string =>
    parseInput(z.object({ [name]: schema }), where === 'body' ? request.body : request.query, where)[name] as string;
  const expertSystem = (request: FastifyRequest): string => homeSystemOf(actor('body', 'expertId', AcceptBody.shape.expertId)(request));
  return {
    'POST /observations': patientRoute('observations.write', 'body'),
    'GET /patients/:patientId/observations': patientRoute('observations.read', 'params'),
    'POST /observations/search': patientRoute('observations.read', 'body'),
    'GET /documents/:uniqueId': documentRoute('document.read'),
    'POST /documents/:uniqueId/corrections': documentRoute('document.correct'),
    // The right of access: the patient themself, or an operator (the data protection officer) for any patient.
    'POST /patients/export': async (request, principal) => {
      const key = keyOfRaw(deps, field(request.body, 'patient'));
      // An invalid CPR number: a patient gets the validation problem from the route; who may not export is refused first.
      if (key === null) return principal.role === 'patient' ? 'pass' : { kind: 'patient.export', patientKey: '' };
      return { kind: 'patient.export', patientKey: key };
    },
    'DELETE /patients/:patientId': async () => ({ kind: 'patient.erase' }),
    'POST /erasures': async () => ({ kind: 'patient.erase' }),
    'PUT /erasures/:patientKey': async () => ({ kind: 'patient.erase' }),
    // Its own action: an auditor counting erasures in the trail must not count the reads of the register.
    'GET /erasures': async () => ({ kind: 'erasures.list' }),
    'GET /audit': async () => ({ kind: 'audit.read' }),
    'POST /audit/search': async () => ({ kind: 'audit.read' }),
    'GET /audit/verify': async () => ({ kind: 'audit.read' }),
    'POST /audit/verify': async () => ({ kind: 'audit.read' }),
    'GET /experts': async () => ({ kind: 'directory.read' }),
    'GET /experts/:id': async () => ({ kind: 'directory.read' }),
    'GET /systems': async () => ({ kind: 'directory.read' }),
    'GET /systems/:id': async () => ({ kind: 'directory.read' }),
    'GET /stats/consultations-per-month': async () => ({ kind: 'directory.read' }),
    'POST /systems': async () => ({ kind: 'systems.manage' }),
    'GET /systems/:id/keys': async () => ({ kind: 'directory.read' }), // public keys
    'POST /systems/:id/keys': async (request) => ({ kind: 'system.keys', systemId: str(field(request.params, 'id')) }),
    'POST /systems/:id/keys/:kid/retire': async (request) => ({ kind: 'system.keys', systemId: str(field(request.params, 'id')) }),
    'GET /dead-letters': async () => ({ kind: 'dead_letters.manage' }),
    // Its own action, audited whatever the outcome: the answer holds the message's body, which may hold patient data.
    'GET /dead-letters/:id': async () => ({ kind: 'dead_letters.read' }),
    'POST /dead-letters/:id/replay': async () => ({ kind: 'dead_letters.manage' }),
    // Its own action, audited whatever the outcome: a message removed for good, which may have held patient data.
    'POST /dead-letters/:id/discard': async () => ({ kind: 'dead_letters.discard' }),
    'POST /consultations': consultationAct(actor('body', 'applicantSystemId', ConsultationBody.shape.applicantSystemId)),
    'GET /consultations': async (request) => ({ kind: 'consultation.read', systemIds: [actor('query', 'system', ConsultationsQuery.shape.system)(request)] }),
    'GET /consultations/:id': async (request) => {
      const id = str(field(request.params, 'id'));
      const systems = await deps.consultationSystems?.(id);
      // Its texts are the patient's data: the read is audited under the patient's key, as a document's read is, so
      // that the patient's export (POST /patients/export) lists who read their consultation.
      if (systems) return { kind: 'consultation.read', systemIds: systems.readers, patientKeys: systems.patientKeys };
      return isExistingConsultationId(id) ? { absent: 'consultation_not_found' } : 'pass'; // a malformed id: the route's 400
    },
    'POST /consultations/:id/accept': consultationAct(expertSystem),
    'POST /consultations/:id/decline': consultationAct(expertSystem),
    'POST /consultations/:id/report': consultationAct(expertSystem),
    'POST /consultations/:id/acknowledge': consultationAct(actor('body', 'systemId', ApplicantBody.shape.systemId)),
    'POST /consultations/:id/cancel': consultationAct(actor('body', 'systemId', ApplicantBody.shape.systemId)),
    // The data protection officer's erasure of one consultation's texts: as erasing a patient, operators only.
    'DELETE /consultations/:id/content': async () => ({ kind: 'consultation.erase' }),
    // Operators only, audited under the consultation's id (who looked at where a case is, and when).
    'GET /consultations/:id/trace': async () => ({ kind: 'consultation.trace' }),
  };
};

/** Credentials that were refused, with the reason code (InvalidTokenError.reason: jose's error code, or ours). */
type Invalid = Readonly<{ invalid: string }>;
const isInvalid = (value: Principal | Invalid): value is Invalid => 'invalid' in value;
/**
 * Invalid's reason for a bearer token that could not be checked (AuthUnavailableError: the identity provider's key set
 * cannot be used, or lacks the token's kid and the fetch that would have found it failed). Answered 503, not 401: the patient page and the CLI take a 401 as "this token is bad" and drop
 * the sign-in or tell the user to get another token, where the fault is the hub's and goes when the provider answers.
 */
const AUTH_UNAVAILABLE = 'auth_unavailable';
/** Only a code-shaped reason goes to the log: an unexpected error's text could quote the token. */
const reasonOf = (error: unknown): string => {
  const reason = (error as { reason?: unknown } | null)?.reason;
  return typeof reason === 'string' && /^[A-Za-z0-9_]{1,64}$/.test(reason) ? reason : 'unverifiable';
};
const CPR_SUB_DETAIL = "the token's sub must not be a CPR number: it is recorded in the audit trail, which erasure cannot reach";
const USER_IS_CPR_DETAIL = "user must be a token subject, and a token's sub is never a CPR number: search a patient's events by patient";
const CPR_SYSTEM_ID_DETAIL = "the token's systemId must not be a CPR number: it is recorded in the audit trail, which erasure cannot reach";
/**
 * The 401's detail for the refusals a caller can fix by themselves (get a new token, fix a clock); the others keep
 * the generic detail, which tells a prober nothing about which check failed.
 */
const INVALID_DETAIL: Readonly<Record<string, string>> = {
  ERR_JWT_EXPIRED: 'the token has expired',
  ERR_JWT_ISSUED_IN_FUTURE: `the token was issued in the future (its iat lies more than ${ISSUED_AT_SKEW_MS / 1000} s after the hub's clock)`,
  ERR_JWT_WRONG_ISSUER: "the token's iss is not the issuer this hub takes (RTS_AUTH_ISSUER)",
  ERR_JWT_WRONG_AUDIENCE: "the token's aud is not the audience this hub takes (RTS_AUTH_AUDIENCE)",
  ERR_JWT_NOT_YET_VALID: `the token is not valid yet (its nbf lies more than ${ISSUED_AT_SKEW_MS / 1000} s after the hub's clock)`,
  [SUB_IS_CPR]: CPR_SUB_DETAIL,
  [SYSTEM_ID_IS_CPR]: CPR_SYSTEM_ID_DETAIL,
};

const ANONYMOUS: Principal = { subject: 'anonymous', role: 'operator', via: 'auth_off' };

/** A dead letter's own id or an envelope id as the hub makes them (any other id a sender chose could be anything). */
const DEAD_LETTER_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The resource an audit entry names: an id of its kind's shape (a document's OID, a consultation's id, a dead
 * letter's, a system's) in which nothing may be a CPR number (mayHoldCprDigits, which takes the hub's own UUIDs and
 * 2.25.<UUID> OIDs whole; leaving an id out refuses nothing). Anything else in the path (a CPR number typed in place
 * of an id: 1.2.2512481234, x12512481234, 00251248-1234-0000-0000-000000000000) would stay in the hash-chained audit
 * trail, with no patient key an erasure could find it by.
 */
const auditable = (value: string | null | undefined, isShaped: (id: string) => boolean): string | null =>
  value && value.length <= 64 && isShaped(value) && !mayHoldCprDigits(value) ? value : null;
const shaped = (pattern: RegExp) => (id: string) => pattern.test(id);
const auditableDocumentId = (value: string | null | undefined): string | null => auditable(value, shaped(DOCUMENT_ID));

/** The document or consultation a route's path names, as the trail keeps such ids (for a request whose check failed). */
const requestedResource = (request: FastifyRequest, route: string): string | null => {
  if (route.startsWith('/documents/:uniqueId')) return auditableDocumentId(str(field(request.params, 'uniqueId')));
  if (route.startsWith('/consultations/:id')) return auditable(str(field(request.params, 'id')), isExistingConsultationId);
  return null;
};

const resourceOf = (action: Action, request: FastifyRequest): string | null => {
  if ('uniqueId' in action) return auditableDocumentId(action.uniqueId);
  if (action.kind === 'dead_letters.discard' || action.kind === 'dead_letters.read') return auditable(str(field(request.params, 'id')), shaped(DEAD_LETTER_ID));
  if (action.kind === 'consultation.read' || action.kind === 'consultation.act' || action.kind === 'consultation.erase' || action.kind === 'consultation.trace') {
    const id = str(field(request.params, 'id'));
    if (id) return auditable(id, isExistingConsultationId); // a legacy id too
    // A CPR number has the shape of a system id (251248-1234): sent as one, it would stay in the trail.
    return 'systemId' in action ? auditable(action.systemId, shaped(SYSTEM_ID_PATTERN)) : null;
  }
  return null;
};

/**
 * Rate-limit refusals (429) in the audit trail. Every refusal is audited, but a flood of refused requests must not
 * become a flood of audit events: the trail does batch what arrives together (one append per chain per tick, the
 * next batch while one is stored), so appends would keep up, yet every entry is still hashed, kept forever and
 * counted against the trail's queue bound, and a full queue drops the audit events of other callers' requests.
 * So per caller and patient the first 429 of a window (one second) is recorded at once (reason `rate_limited`) and
 * the further ones of that window are counted and recorded as one event when it ends (reason `rate_limited:<count>`,
 * with the last one's time, route and request id): at most two events a second per caller and patient, however
 * fast the refused requests come. Beyond `maxWindows` open windows a caller's refusals are counted without the
 * patient (one window per caller), so the map stays bounded by the rate limiter's own callers.
 */
class RateLimitAudit {
  private readonly windows = new Map<string, { until: number; count: number; last: AuditEntry }>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly record: (entry: AuditEntry) => void,
    private readonly nowMs: () => number,
    private readonly windowMs = 1000,
    private readonly maxWindows = 10_000,
  ) {}

  refused(caller: string, entry: AuditEntry): void {
    const now = this.nowMs();
    let key = `${caller}|${entry.patientKey ?? ''}`;
    if (!this.windows.has(key) && this.windows.size >= this.maxWindows) {
      this.flush(now);
      if (this.windows.size >= this.maxWindows) {
        key = `${caller}|`;
        entry = { ...entry, patientKey: null, ...(entry.selfAccess === undefined ? {} : { selfAccess: false }) };
      }
    }
    const open = this.windows.get(key);
    if (open && now < open.until) {
      open.count++;
      open.last = entry;
      return;
    }
    if (open) this.end(key, open);
    this.record(entry);
    this.windows.set(key, { until: now + this.windowMs, count: 0, last: entry });
    this.timer ??= setInterval(() => this.flush(this.nowMs()), this.windowMs).unref();
  }

  /** Records the counts of the windows ended by `now` (all of them without it) and forgets those windows. */
  flush(now = Infinity): void {
    for (const [key, window] of this.windows) if (window.until <= now) this.end(key, window);
    if (this.windows.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private end(key: string, window: { count: number; last: AuditEntry }): void {
    this.windows.delete(key);
    if (window.count > 0) this.record({ ...window.last, reason: `rate_limited:${window.count}` });
  }
}

/**
 * An audit entry's `selfAccess` (audit-chain.ts): for a patient's request, whether the patient key of their token is
 * the one the entry is recorded under. The subject alone cannot say: an identity provider's `sub` is its own, not the
 * hub's pseudonym of the key, and the patient's export showed their own failed requests as another patient's.
 */
const selfAccessOf = (principal: Principal | null | undefined, patientKey: string | null): { selfAccess?: boolean } =>
  principal && principal.via !== 'auth_off' && principal.role === 'patient' ? { selfAccess: principal.patientKey !== undefined && principal.patientKey === patientKey } : {};

const isWrite = (method: string): boolean => method === 'POST' || method === 'DELETE' || method === 'PUT' || method === 'PATCH';

export const installSecurity = (app: FastifyInstance, deps: SecurityDependencies): void => {
  const limiter = new RateLimiter(deps.rateLimit);
  const table = rules(deps);
  const rateLimitAudit = new RateLimitAudit((entry) => void deps.audit.record(entry).catch(() => deps.onAuditFailure?.()), () => deps.now().getTime());
  app.addHook('onClose', async () => rateLimitAudit.flush());
  /** 429, audited (through rateLimitAudit: see there). */
  const tooManyFrom = (request: FastifyRequest, reply: FastifyReply, caller: string, principal: Principal | null, retryAfterSeconds: number) => {
    rateLimitAudit.refused(caller, {
      at: deps.now().toISOString(),
      subject: principal?.subject ?? 'anonymous',
      role: principal && principal.via !== 'auth_off' ? principal.role : 'none',
      systemId: principal?.systemId ?? null,
      action: routeKey(request),
      patientKey: patientKeyInPath(request),
      resource: null,
      ip: request.ip,
      requestId: String(request.id),
      outcome: 'denied',
      status: 429,
      reason: 'rate_limited',
      ...selfAccessOf(principal, patientKeyInPath(request)),
    });
    return tooMany(reply, retryAfterSeconds);
  };

  const authenticate = async (request: FastifyRequest): Promise<Principal | Invalid | null> => {
    if (deps.mode === 'off') return ANONYMOUS;
    const authorization = request.headers.authorization;
    if (typeof authorization === 'string' && /^Bearer\s+/i.test(authorization) && deps.verifyBearer) {
      try {
        return await deps.verifyBearer(authorization.replace(/^Bearer\s+/i, '').trim());
      } catch (error) {
        return { invalid: error instanceof AuthUnavailableError ? AUTH_UNAVAILABLE : reasonOf(error) };
      }
    }
    const apiKey = request.headers['x-api-key'];
    if (typeof apiKey === 'string' && deps.systemOfApiKey) {
      const systemId = deps.systemOfApiKey(apiKey);
      return systemId ? { subject: `system:${systemId}`, role: 'system', systemId, via: 'api_key' } : { invalid: 'unknown_api_key' };
    }
    return authorization !== undefined || apiKey !== undefined ? { invalid: 'malformed_credentials' } : null;
  };

  const refuse = (request: FastifyRequest, reply: FastifyReply, code: string, detail: string, reason: string) => {
    if (request.audited) request.audited.reason = reason;
    else request.audited = { action: routeKey(request), patientKey: null, resource: null, reason, patientData: false };
    return sendProblem(reply, problem(code, detail));
  };

  app.addHook('onRequest', async (request, reply) => {
    const route = request.routeOptions?.url;
    if (route === undefined || isPublic(ruleMethod(request), route)) {
      if (route === '/auth/dev-login') {
        const rate = limiter.take(`ip:${request.ip}`);
        if (!rate.allowed) return tooManyFrom(request, reply, `ip:${request.ip}`, null, rate.retryAfterSeconds);
      }
      return;
    }
    // Without access control every caller is let in, so a web page on a DNS name its owner points at 127.0.0.1 (DNS
    // rebinding) is same-origin with the hub and reads, changes and erases every patient's data: the threat dev-login
    // refuses, with more at stake. Such a request names the page's host, never localhost or an address.
    if (deps.mode === 'off' && !isLiteralHost(request.headers.host)) {
      return refuse(request, reply, 'forbidden', 'with access control off (RTS_AUTH=off) the hub answers only requests addressed to localhost or an IP address (the Host header), so that no web page can reach it through a DNS name that points here', 'host_not_literal');
    }
    const principal = await authenticate(request);
    const caller = principal && !isInvalid(principal) ? `${principal.via}:${principal.subject}` : `ip:${request.ip}`;
    const rate = limiter.take(caller);
    if (!rate.allowed) return tooManyFrom(request, reply, caller, principal && !isInvalid(principal) ? principal : null, rate.retryAfterSeconds);
    if (principal !== null && isInvalid(principal) && principal.invalid === AUTH_UNAVAILABLE) {
      // Audited as a refusal (who tried to reach what), with no WWW-Authenticate: nothing is wrong with the token.
      request.audited = { action: routeKey(request), patientKey: patientKeyInPath(request), resource: null, reason: AUTH_UNAVAILABLE, patientData: false };
      return sendProblem(reply, problem(AUTH_UNAVAILABLE, "the hub cannot check this bearer token now: its identity provider has not answered (its key set cannot be used, or it lacks the token's key and the provider could not be asked for it). The token was not judged: keep it and retry later"));
    }
    if (principal === null || isInvalid(principal)) {
      reply.header('www-authenticate', principal === null ? 'Bearer' : 'Bearer error="invalid_token"');
      request.audited = { action: routeKey(request), patientKey: patientKeyInPath(request), resource: null, reason: principal === null ? 'no_credentials' : 'invalid_credentials', patientData: false };
      if (principal === null) return sendProblem(reply, problem('unauthenticated', 'send a bearer token (Authorization: Bearer ...) or an API key (X-Api-Key)'));
      // The reason code (jose's, or ours), never the token: enough to tell an expired token from a forged one.
      request.log.info({ credentialsRefused: principal.invalid }, 'credentials refused');
      return sendProblem(reply, problem('unauthenticated', INVALID_DETAIL[principal.invalid] ?? 'the token or API key is not valid (expired, wrong signature, issuer or audience)'));
    }
    request.principal = principal;
  });

  const patientKeyInPath = (request: FastifyRequest): string | null => keyOfRaw(deps, field(request.params, 'patientId'));

  /** Whether the caller's system takes part in the consultation (its applicant, or offered it for an expert). */
  const isParty = async (principal: Principal, consultationId: string): Promise<boolean> => {
    if (principal.systemId === undefined) return false;
    return (await deps.consultationSystems?.(consultationId))?.parties.includes(principal.systemId) ?? false;
  };

  /**
   * Reads do not wait for their audit event, so while the trail cannot be written (its last append failed, none has
   * committed since: a full disk) a read of patient data would be served unaudited. Refused instead, 503 with
   * Retry-After, as a write whose event fails; the refusal is audited like any answer, and its own append is what
   * finds the trail writable again once the store takes writes. A flag read: no wait on the read path.
   */
  const failClosedForReads = (request: FastifyRequest, reply: FastifyReply) => {
    if (isWrite(request.method) || !request.audited?.patientData || !deps.audit.unwritable) return;
    deps.onAuditUnavailable?.();
    return sendProblem(reply, problem('audit_unavailable', 'the audit trail cannot be written now (the hub cannot store), so patient data is not served; retry later'));
  };

  app.addHook('preHandler', async (request, reply) => {
    const principal = request.principal;
    const route = request.routeOptions?.url;
    if (!principal || route === undefined) return;
    const rule = table[`${ruleMethod(request)} ${route}`] ?? (async () => ({ kind: 'other' }) as Action);
    let action: Action | Absent | 'pass';
    try {
      action = await rule(request, principal);
    } catch (error) {
      // The check could not read whose data this is or who may read it (the store failed: a consultation's readers
      // and patients, a document's patient). The error handler refuses the request (503 storage_unavailable); that
      // answer is audited as any other, naming what was asked for, so a failed check is never a request the trail
      // lacks. The patients are not known here: the entry has no patient key. A malformed actor field (the caller's
      // 400, the route's own problem) stays unaudited, as the rules say.
      if (!(error instanceof ValidationError)) request.audited = { action: routeKey(request), patientKey: patientKeyInPath(request), resource: requestedResource(request, route), reason: null, patientData: true };
      throw error;
    }
    if (action === 'pass' || 'absent' in action) {
      request.audited = { action: routeKey(request), patientKey: null, resource: auditableDocumentId(str(field(request.params, 'uniqueId'))), reason: null, patientData: true };
      if (action !== 'pass') return sendProblem(reply, problem(action.absent, ABSENT_DETAIL[action.absent]));
      return;
    }
    const patientKey = 'patientKey' in action && action.patientKey !== '' ? action.patientKey : null;
    request.audited = { action: action.kind, patientKey, resource: resourceOf(action, request), reason: null, patientData: concernsPatientData(action) };
    if ('patientKeys' in action && action.patientKeys) auditUnderPatients(request, action.patientKeys);
    if (deps.mode === 'off') return failClosedForReads(request, reply);
    const needsScope = principal.role === 'clinician' && (action.kind === 'observations.read' || action.kind === 'document.read') && principal.systemId !== undefined;
    const scope = needsScope ? await deps.clinicianScope(principal.systemId!) : null;
    const decision = authorize(principal, action, scope);
    if (decision.allowed) return failClosedForReads(request, reply);
    if (action.kind === 'document.read' || action.kind === 'document.correct') {
      // The same answer as for a uniqueId that does not exist: a valid id is not confirmed to a stranger.
      return refuse(request, reply, 'document_not_found', 'no document has this uniqueId', decision.reason);
    }
    if (action.kind === 'consultation.read' && route === '/consultations/:id' && !(await isParty(principal, str(field(request.params, 'id'))))) {
      // Likewise for a consultation: only a party (which knows it exists) hears that it may not read it.
      return refuse(request, reply, 'consultation_not_found', 'no consultation has this id', decision.reason);
    }
    return refuse(request, reply, 'forbidden', 'you may not do this with this resource', decision.reason);
  });

  app.addHook('onSend', async (request, reply, payload) => {
    const audited = request.audited;
    if (!audited) return payload;
    const status = reply.statusCode;
    const denied = audited.reason !== null;
    if (!audited.patientData && !denied) return payload;
    const principal = request.principal;
    const outcome: AuditOutcome = denied ? 'denied' : status >= 400 ? 'error' : 'allowed';
    const entry: AuditEntry = {
      at: deps.now().toISOString(),
      subject: principal?.subject ?? 'anonymous',
      role: principal && principal.via !== 'auth_off' ? principal.role : 'none',
      systemId: principal?.systemId ?? null,
      action: audited.action,
      patientKey: audited.patientKey,
      resource: audited.resource,
      ip: request.ip,
      requestId: String(request.id),
      outcome,
      status,
      // A refused step (404, 409, 422...) is recorded with its problem code: 'error' alone did not say what failed.
      reason: audited.reason ?? (outcome === 'error' ? problemCodeOf(payload) : null),
      ...selfAccessOf(principal, audited.patientKey),
    };
    const further = (audited.alsoUnder ?? []).map(({ patientKey, resource }) => deps.audit.record({ ...entry, patientKey, resource, ...selfAccessOf(principal, patientKey) }));
    const recorded = Promise.all([deps.audit.record(entry), ...further]);
    if (!isWrite(request.method) || outcome !== 'allowed') {
      recorded.catch(() => deps.onAuditFailure?.());
      return payload;
    }
    try {
      await recorded;
      return payload;
    } catch {
      // Fail closed for writes: the change is committed (and idempotent), but it is not reported done while its
      // audit event is missing; the client's retry records it.
      deps.onAuditFailure?.();
      reply.code(503).header('content-type', 'application/problem+json; charset=utf-8').header('retry-after', String(RETRY_AFTER_SECONDS));
      return JSON.stringify(problem('audit_unavailable', 'the change could not be recorded in the audit trail; retry the request'));
    }
  });

  if (deps.devLogin) {
    const devLogin = deps.devLogin;
    app.post('/auth/dev-login', async (request, reply) => {
      // DNS rebinding: a web page on a name its attacker points at 127.0.0.1 is same-origin with this address, and
      // could mint an operator's token here. Such a request names the attacker's host; a browser on this machine's
      // own page names localhost or an address. A request without Host is no browser's.
      if (!isLiteralHost(request.headers.host)) {
        return sendProblem(reply, problem('forbidden', 'dev-login answers only requests addressed to localhost or an IP address (the Host header), so that no web page can reach it through a DNS name that points here'));
      }
      // A reverse proxy on this machine (TLS in front of a hub left on loopback) reaches it from loopback, and nginx's
      // proxy_pass http://127.0.0.1:8080 sends Host: 127.0.0.1:8080: dev-login then handed anyone the proxy serves an
      // operator's token. A proxy says it forwarded; a browser or the CLI on this machine never sends these headers.
      if (cameThroughProxy(request.headers)) {
        return sendProblem(reply, problem('forbidden', 'dev-login answers only requests made directly to the hub, not through a proxy (Forwarded, X-Forwarded-*, X-Real-IP, Via or a client-address header of a proxy or CDN): it is for trying the hub out on this machine'));
      }
      const body = parseInput(DevLoginBody, request.body, 'body');
      // 422 invalid_patient_id before a token is made. The token names the patient by their key, not the CPR number.
      const patientKey = body.role === 'patient' ? deps.patientKeyOf(parseCpr(body.patient ?? '')) : undefined;
      if (body.sub !== undefined && holdsCprNumber(body.sub)) throw new ValidationError('invalid_subject', CPR_SUB_DETAIL, [{ path: 'sub', message: 'a name or pseudonym, not a CPR number' }]);
      // The verifier would refuse the token it made (401 on every request): refused here, by the same rule
      // (holdsCprNumber), as such a sub is.
      if (body.systemId !== undefined && holdsCprNumber(body.systemId)) throw new ValidationError('invalid_subject', CPR_SYSTEM_ID_DETAIL, [{ path: 'systemId', message: 'a system id, not a CPR number' }]);
      const sub = body.sub ?? (patientKey !== undefined ? patientSubject(patientKey) : `dev-${body.role}`);
      return devLogin({ sub, role: body.role, ...(patientKey !== undefined ? { patientKey } : {}), ...(body.systemId ? { systemId: body.systemId } : {}) });
    });
  }

  /** The erasure as answered and logged: the pseudonymous key and time only (the hub's log is an erasure record that outlives a lost disk). */
  const erased = (request: FastifyRequest, result: ErasureResult) => {
    if (request.audited) request.audited.patientKey = result.patientKey;
    logErasure(request.log, result); // at every log level but silent
    return { erased: true, patientKey: result.patientKey, erasedAt: result.erasedAt, alreadyErased: result.alreadyErased, known: result.known, consultationsWithTextsLeftInEvents: result.consultationsWithTextsLeftInEvents };
  };
  /** The erasure's answer; one recorded but not finished (503) still gets its line: a repeat answers alreadyErased. */
  const erasing = async (request: FastifyRequest, erasure: Promise<ErasureResult>) => {
    try {
      return erased(request, await erasure);
    } catch (error) {
      if (error instanceof ErasureIncompleteError) logErasure(request.log, error.erasure);
      throw error;
    }
  };

  /**
   * The erasure by CPR number, of POST /erasures and of the deprecated DELETE /patients/{patientId}: they differ only
   * in where the number and the confirmation come from (`confirm` says how to give it, for the 404's detail).
   */
  const eraseByCpr = async (request: FastifyRequest, raw: string, ifUnknown: 'refuse' | 'erase', confirm: string, path?: string) => {
    const cpr = parseCpr(raw, path);
    // Audited under the patient's key also when refused: a request to erase a person the hub holds nothing of
    // is answered (404) and that answer is on record.
    if (request.audited) request.audited.patientKey = deps.patientKeyOf(cpr);
    try {
      const by = request.principal?.subject ?? 'anonymous';
      return await erasing(request, deps.erasure.erase(cpr, { by, correlationId: String(request.id), ifUnknown }));
    } catch (error) {
      if ((error as { code?: string }).code !== 'unknown_patient') throw error;
      throw new NotFoundError(
        'unknown_patient',
        `the hub holds nothing of this patient (no document, no data key), so nothing was erased: check the number. To record the erasure anyway, so that the hub refuses uploads for this number from now on, repeat the request with ${confirm}`,
      );
    }
  };

  // The CPR number in the body: a URL is kept in reverse proxies' access logs and browsers' histories.
  app.post('/erasures', async (request, reply) => {
    if (isXml(request)) return sendProblem(reply, problem('unsupported_media_type', 'send application/json'));
    const { patient, unknown } = parseInput(ErasureBody, request.body, 'body');
    return eraseByCpr(request, patient, unknown ?? 'refuse', '"unknown": "erase" in its body', 'body.patient');
  });

  // Deprecated (Deprecation header: deprecated-routes.ts), kept for existing clients: POST /erasures.
  app.delete('/patients/:patientId', async (request) => {
    const { patientId } = parseInput(ErasureParams, request.params, 'path');
    const { unknown } = parseInput(ErasureQuery, request.query, 'query');
    return eraseByCpr(request, patientId, unknown ?? 'refuse', '?unknown=erase');
  });

  // Erasure by pseudonymous key: how the erasures a restored backup predates are repeated (the hub keeps no CPR
  // numbers; `GET /erasures`, a newer backup or the hub's log give the keys). Always recorded: a key comes from a
  // record of an erasure, and one that matches no patient of this copy blocks nobody else.
  app.put('/erasures/:patientKey', async (request) => {
    const { patientKey } = parseInput(ErasureByKeyParams, request.params, 'path');
    return erasing(request, deps.erasure.eraseKey(patientKey, { by: request.principal?.subject ?? 'anonymous', correlationId: String(request.id), ifUnknown: 'erase' }));
  });

  app.get('/erasures', async (request) => {
    const q = parseInput(ErasuresQuery, request.query, 'query');
    const page = await deps.erasure.recorded(BigInt(q.after ?? '0'), q.limit ?? MAX_ERASURES_PAGE);
    return { count: page.items.length, items: page.items, ...(page.next !== null ? { next: String(page.next) } : {}) };
  });

  /**
   * Verification walks whole chains: the UTC days that from and to fall on (default: the last 7; `to` defaults to
   * now). Checked as a search's interval: a reversed or too wide range is 422, never verified in part.
   */
  const daysOf = (q: { from?: string | undefined; to?: string | undefined }, source: 'query' | 'body'): string[] => {
    const now = deps.now();
    const to = q.to ? new Date(q.to) : now;
    // The default never reaches before 1970 (refused when asked for: nothing was audited then).
    const from = q.from ? new Date(q.from) : new Date(Math.max(0, to.getTime() - 6 * 86_400_000));
    return verifyDaysOf({ from, to, now, source });
  };

  // [from, to) by instant, at most `limit` entries an answer; one cut at the limit says so (truncated) and carries
  // the cursor of the rest, so no entry can be buried behind the first page. The same search for POST /audit/search
  // and the deprecated GET /audit: a cursor of one answer pages the other.
  const searchAudit = async (q: z.infer<typeof AuditSearchBody>, patientPath?: string) => {
    const now = deps.now();
    const to = q.to ? new Date(q.to) : null;
    const from = q.from ? new Date(q.from) : startOfUtcDay(new Date(Math.max(0, (to ?? now).getTime() - 6 * 86_400_000)));
    // The CPR number (in the body, or the deprecated query) is hashed to the pseudonymous key here and goes nowhere else.
    const key: AuditQueryKey = { ...whoIsSearched(q, patientPath), from: q.from ? from.getTime() : null, to: to ? to.getTime() : null };
    // cursor= (a client's empty nextCursor) is the first page, as on the other paged routes.
    const source = patientPath?.startsWith('body.') ? 'body' : 'query';
    const search: AuditSearch = { from, to, now, limit: q.limit, after: q.cursor ? decodeAuditCursor(q.cursor, key) : undefined, source };
    const page = await SEARCHES[key.by](deps.audit, key.who, search);
    return {
      [ANSWER_FIELD[key.by]]: key.who,
      days: { from: page.days[0], to: page.days[page.days.length - 1] },
      from: from.toISOString(),
      to: to ? to.toISOString() : null,
      bounds: '[from,to)',
      count: page.items.length,
      truncated: page.truncated,
      nextCursor: page.next ? encodeAuditCursor(key, page.next) : null,
      items: page.items,
    };
  };

  /**
   * Who or what a search is by, checked: a CPR number becomes its key (422 invalid_patient_id), a resource or a
   * request id must have the shape the trail records (422 invalid_resource, invalid_request_id). The problem names
   * the field and its rule, never the value (a CPR number typed into the wrong field stays out of the answer and the log);
   * a user holding a CPR number is 422 invalid_subject, as no token's sub holds one.
   */
  const whoIsSearched = (q: z.infer<typeof AuditSearchBody>, patientPath?: string): Pick<AuditQueryKey, 'by' | 'who'> => {
    if (q.patient !== undefined) return { by: 'patient', who: deps.patientKeyOf(parseCpr(q.patient, patientPath)) };
    if (q.resource !== undefined) {
      if (!AuditResource.safeParse(q.resource).success) throw new ValidationError('invalid_resource', `resource must be ${RESOURCE_RULE}`, [{ path: 'body.resource', message: 'not a document uniqueId or a consultation id' }]);
      return { by: 'resource', who: q.resource };
    }
    if (q.requestId !== undefined) {
      if (!AuditRequestId.safeParse(q.requestId).success) throw new ValidationError('invalid_request_id', `requestId must be ${REQUEST_ID_RULE}`, [{ path: 'body.requestId', message: 'not a request id the hub keeps' }]);
      return { by: 'requestId', who: q.requestId };
    }
    // A token's sub never holds a CPR number (tokens.ts refuses one), so such a user is no search the trail could
    // answer: most likely a patient's number typed into the wrong field, kept out of the answer and its cursor.
    if (holdsCprNumber(q.user!)) {
      throw new ValidationError('invalid_subject', USER_IS_CPR_DETAIL, [{ path: patientPath ? 'body.user' : 'query.user', message: 'a token subject, not a CPR number' }]);
    }
    return { by: 'user', who: q.user! };
  };

  // The patient's CPR number in the body: a URL is kept in reverse proxies' access logs and browsers' histories.
  app.post('/audit/search', async (request, reply) => {
    if (isXml(request)) return sendProblem(reply, problem('unsupported_media_type', 'send application/json'));
    return searchAudit(parseInput(AuditSearchBody, request.body, 'body'), 'body.patient');
  });

  // Deprecated (Deprecation header: deprecated-routes.ts), kept for existing clients: POST /audit/search.
  app.get('/audit', async (request) => searchAudit(parseInput(AuditQuery, request.query, 'query')));

  app.get('/audit/verify', async (request) => {
    const q = parseInput(AuditVerifyQuery, request.query, 'query');
    const days = daysOf(q, 'query');
    return { days: { from: days[0], to: days[days.length - 1] }, ...(await deps.audit.verify(days)) };
  });
  // The same, checked against heads kept outside the store (an earlier answer's `heads`, or the hub's
  // 'audit anchor' log lines): a chain cut back at its tail is whole in itself, but loses its anchor.
  app.post('/audit/verify', async (request) => {
    const body = parseInput(AuditVerifyBody, request.body, 'body');
    if (Object.keys(body.anchors).length > AUDIT_PARTITIONS * MAX_AUDIT_DAYS_WALKED) throw new ValidationError('too_many_anchors', `at most ${AUDIT_PARTITIONS * MAX_AUDIT_DAYS_WALKED} anchors`);
    const days = daysOf(body, 'body');
    return { days: { from: days[0], to: days[days.length - 1] }, ...(await deps.audit.verify(days, body.anchors)) };
  });
};

/** Each kind of audit search: the trail's query, and the field of the answer that says whom or what it was by. */
const SEARCHES: Readonly<Record<AuditQueryKey['by'], (trail: AuditTrail, who: string, search: AuditSearch) => Promise<AuditPage>>> = {
  patient: (trail, who, search) => trail.byPatient(who, search),
  user: (trail, who, search) => trail.bySubject(who, search),
  resource: (trail, who, search) => trail.byResource(who, search),
  requestId: (trail, who, search) => trail.byRequestId(who, search),
};
const ANSWER_FIELD: Readonly<Record<AuditQueryKey['by'], string>> = { patient: 'patientKey', user: 'user', resource: 'resource', requestId: 'requestId' };

const startOfUtcDay = (t: Date): Date => new Date(startOfUtcDayMillis(t.getTime()));

/** The code of a problem+json answer, when the payload is one (a code only: never anything of the detail). */
const problemCodeOf = (payload: unknown): string | null => {
  if (typeof payload !== 'string' || payload.length > 64 * 1024) return null;
  try {
    const code = (JSON.parse(payload) as { code?: unknown } | null)?.code;
    return typeof code === 'string' && /^[a-z][a-z0-9_]{0,63}$/.test(code) ? code : null;
  } catch {
    return null;
  }
};

const routeKey = (request: FastifyRequest): string => `${request.method} ${request.routeOptions?.url ?? '(no route)'}`;

const tooMany = (reply: FastifyReply, retryAfterSeconds: number) =>
  sendProblem(reply.header('retry-after', String(retryAfterSeconds)), problem('rate_limited', `too many requests; retry after ${retryAfterSeconds} s`));
