import type { FastifyRequest } from 'fastify';

/**
 * Putting a request's audit entry (security.ts) under the patients its answer concerns, so that each patient's export
 * (POST /patients/export, "The right of access") lists who read or acted on their data. Only pseudonymous keys and
 * resource ids go into the entries; never a text of the answer.
 *
 * `auditUnderPatients(request, keys)`: the entry is about one resource (a consultation) of these patients: the first
 * key goes on the entry, each other on a copy of it naming the same resource (a consultation recorded before requests
 * were checked may attach documents of several patients).
 * `auditListedUnderPatients(request, listed)`: the answer lists several resources (GET /consultations): the entry
 * stays as it is (who listed what), and a copy is recorded under each patient of each resource listed, naming it.
 */
export const auditUnderPatients = (request: FastifyRequest, patientKeys: readonly string[]): void => {
  const audited = request.audited;
  if (!audited) return;
  const others = patientKeys.filter((key) => key !== audited.patientKey);
  if (audited.patientKey === null && others.length > 0) audited.patientKey = others.shift()!;
  audited.alsoUnder = [...(audited.alsoUnder ?? []), ...others.map((patientKey) => ({ patientKey, resource: audited.resource }))];
};

export const auditListedUnderPatients = (request: FastifyRequest, listed: readonly Readonly<{ resource: string; patientKeys: readonly string[] }>[]): void => {
  const audited = request.audited;
  if (!audited) return;
  audited.alsoUnder = [...(audited.alsoUnder ?? []), ...listed.flatMap(({ resource, patientKeys }) => patientKeys.map((patientKey) => ({ patientKey, resource })))];
};
