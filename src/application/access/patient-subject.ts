/**
 * The `sub` of a patient's token minted by the hub (dev-login, token.js) when none is given: a pseudonym from the
 * patient's pseudonymous key (never the CPR number), so each patient has a rate-limit bucket and an audit subject of
 * their own.
 */
export const patientSubject = (patientKey: string): string => `patient-${patientKey.replace(/^p/, '').slice(0, 12)}`;
