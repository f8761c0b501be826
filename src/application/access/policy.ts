/**
 * Who may do what: the access policy as one pure function. The HTTP edge gathers the facts (the caller's
 * verified principal, the pseudonymous key of the patient a request concerns, the consultations a clinician's
 * system was offered) and asks `authorize`; nothing here does I/O.
 *
 * | role      | may                                                                                           |
 * |-----------|-----------------------------------------------------------------------------------------------|
 * | patient   | read and write their own observations and documents (matched on the pseudonymous key)         |
 * | clinician | read the documents attached to consultations offered to their system's experts, and those     |
 * |           | patients' observations; act on consultations for their own system; read the directory         |
 * | system    | act on consultations for its own system and its own experts; read the directory               |
 * | operator  | manage systems (POST /systems), dead letters (a read of one audited: its body may hold patient |
 * |           | data), erase patients and consultations' texts, read                                          |
 * |           | and verify the audit trail; export a patient's data (patient.export); where a consultation is |
 * |           | (GET /consultations/{id}/trace: consultation.trace, no texts, audited)                        |
 * | patient   | also: export their own data (patient.export)                                                  |
 *
 * Everything not listed is refused. Patient data is not readable by operators or systems through HTTP, with one
 * exception: the export of one patient's data (GDPR art. 15, the right of access), which the data protection officer
 * answers for a patient who asks, and the hub has no role for a DPO other than the operator's (it is their erasures
 * too). Each export is audited under the patient's key, so the patient's next export shows who exported it.
 */
export const ROLES = ['patient', 'clinician', 'system', 'operator'] as const;
export type Role = (typeof ROLES)[number];

/** A verified caller. `patientKey` is the pseudonym of the patient claim (the CPR number itself is never kept). */
export type Principal = Readonly<{
  subject: string;
  role: Role;
  /** For role patient: the pseudonymous key of the patient the token was issued to. */
  patientKey?: string;
  /** For clinician and system: the connected system they belong to. */
  systemId?: string;
  /** How the caller proved who they are. */
  via: 'jwt' | 'api_key' | 'dev' | 'auth_off';
}>;

/** What a clinician's system may see: the documents attached to consultations offered to its experts, and their patients. */
export type ClinicianScope = Readonly<{ uniqueIds: ReadonlySet<string>; patientKeys: ReadonlySet<string> }>;

export type Action =
  | Readonly<{ kind: 'observations.read'; patientKey: string }>
  | Readonly<{ kind: 'observations.write'; patientKey: string }>
  | Readonly<{ kind: 'document.read'; patientKey: string; uniqueId: string }>
  | Readonly<{ kind: 'document.correct'; patientKey: string; uniqueId: string }>
  | Readonly<{ kind: 'patient.erase' }>
  /** A whole copy of one patient's data (the right of access): the patient themself, or an operator (the DPO). */
  | Readonly<{ kind: 'patient.export'; patientKey: string }>
  /** Erasing one consultation's texts (the data protection officer's, as a patient's erasure): operators only. */
  | Readonly<{ kind: 'consultation.erase' }>
  /**
   * Where a consultation is (GET /consultations/{id}/trace): operators only. No texts, but who asked whom about a
   * case and when, so it is audited as a read of the consultation (an investigator's search by its id shows it).
   */
  | Readonly<{ kind: 'consultation.trace' }>
  /** Reading the erasure register (GET /erasures): every erased patient's key, a sensitive read, but no erasure. */
  | Readonly<{ kind: 'erasures.list' }>
  | Readonly<{ kind: 'audit.read' }>
  | Readonly<{ kind: 'directory.read' }>
  | Readonly<{ kind: 'systems.manage' }>
  | Readonly<{ kind: 'dead_letters.manage' }>
  /**
   * One dead letter with its body (GET /dead-letters/{id}): the operators' too, but audited whatever its outcome. A
   * sender's clear body may hold patient data (a consultation's question or diagnosis sent without message security).
   */
  | Readonly<{ kind: 'dead_letters.read' }>
  /**
   * Discarding a dead letter: the operators' too, but audited whatever its outcome (as an erasure is): it removes a
   * message for good, and a message may hold patient data.
   */
  | Readonly<{ kind: 'dead_letters.discard' }>
  /**
   * Acting for, or reading the consultations of, `systemId` (the applicant, or an expert's home system).
   * `patientKeys`: the patients of the one consultation it concerns, which the audit entry is recorded under (the
   * policy does not look at them).
   */
  | Readonly<{ kind: 'consultation.act'; systemId: string; patientKeys?: readonly string[] }>
  | Readonly<{ kind: 'consultation.read'; systemIds: readonly string[]; patientKeys?: readonly string[] }>
  /** Registering or retiring the message keys of `systemId`: an operator, or that system itself (rotation). */
  | Readonly<{ kind: 'system.keys'; systemId: string }>
  /** A route without a rule of its own: operators only. */
  | Readonly<{ kind: 'other' }>;

export type Decision = Readonly<{ allowed: true }> | Readonly<{ allowed: false; reason: string }>;

const ALLOW: Decision = { allowed: true };
const deny = (reason: string): Decision => ({ allowed: false, reason });

/** A principal whose claims are incomplete for its role is refused everything patient-related. */
export const authorize = (principal: Principal, action: Action, scope: ClinicianScope | null = null): Decision => {
  const { role } = principal;
  switch (action.kind) {
    case 'observations.write':
    case 'document.correct':
      if (role === 'patient') return principal.patientKey !== undefined && principal.patientKey === action.patientKey ? ALLOW : deny('not_own_patient_data');
      return deny('role_may_not_write_patient_data');
    case 'observations.read':
    case 'document.read': {
      if (role === 'patient') return principal.patientKey !== undefined && principal.patientKey === action.patientKey ? ALLOW : deny('not_own_patient_data');
      if (role === 'clinician') {
        if (!scope || principal.systemId === undefined) return deny('no_consultation');
        // Documents: those attached, and no other (the README's rule). A patient's other documents, their originals
        // since corrected (values no answer of readings holds) among them, were read as "the patient's".
        if (action.kind === 'document.read') return scope.uniqueIds.has(action.uniqueId) ? ALLOW : deny('no_consultation');
        if (scope.patientKeys.has(action.patientKey)) return ALLOW;
        return deny('no_consultation');
      }
      return deny('role_may_not_read_patient_data');
    }
    case 'patient.export':
      if (role === 'operator') return ALLOW;
      if (role === 'patient') return principal.patientKey !== undefined && principal.patientKey === action.patientKey ? ALLOW : deny('not_own_patient_data');
      return deny('role_may_not_export_patient_data');
    case 'patient.erase':
    case 'consultation.erase':
    case 'consultation.trace':
    case 'erasures.list':
    case 'audit.read':
    case 'systems.manage':
    case 'dead_letters.manage':
    case 'dead_letters.read':
    case 'dead_letters.discard':
    case 'other':
      return role === 'operator' ? ALLOW : deny('operator_only');
    case 'system.keys':
      if (role === 'operator') return ALLOW;
      if (role !== 'system') return deny('role_may_not_manage_keys');
      return principal.systemId !== undefined && principal.systemId === action.systemId ? ALLOW : deny('other_system');
    case 'directory.read':
      return ALLOW; // every authenticated caller: the directory holds no patient data
    case 'consultation.act':
      if (role !== 'system' && role !== 'clinician') return deny('role_may_not_act_for_a_system');
      return principal.systemId !== undefined && principal.systemId === action.systemId ? ALLOW : deny('other_system');
    case 'consultation.read':
      if (role !== 'system' && role !== 'clinician') return deny('role_may_not_read_consultations');
      return principal.systemId !== undefined && action.systemIds.includes(principal.systemId) ? ALLOW : deny('other_system');
    default: {
      const never: never = action;
      return deny(`unknown_action ${String((never as { kind?: unknown }).kind)}`);
    }
  }
};

/** Whether an action touches patient data (and so must leave an audit event whatever its outcome). */
export const concernsPatientData = (action: Action): boolean =>
  action.kind === 'observations.read' ||
  action.kind === 'observations.write' ||
  action.kind === 'document.read' ||
  action.kind === 'document.correct' ||
  action.kind === 'patient.erase' ||
  action.kind === 'patient.export' ||
  action.kind === 'consultation.erase' ||
  action.kind === 'consultation.trace' ||
  action.kind === 'dead_letters.discard' ||
  action.kind === 'dead_letters.read' ||
  action.kind === 'erasures.list' ||
  action.kind === 'consultation.read' ||
  action.kind === 'consultation.act' ||
  action.kind === 'audit.read';
