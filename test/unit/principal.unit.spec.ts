import { randomBytes } from 'node:crypto';
import { HmacPatientKeys } from '../../src/adapters/system/hmac-patient-keys';
import { principalOf } from '../../src/bootstrap/security-module';
import type { Cpr } from '../../src/domain/monitoring/cpr';

// A patient's principal from a token's claims: the key the patient's data is found under.
describe('principalOf', () => {
  const keys = new HmacPatientKeys(randomBytes(32));
  const expected = keys.keyFor('251248-1234' as Cpr);

  it("takes an identity provider's CPR number as ddmmyy-ssss or as ten digits: the same patient", () => {
    expect(principalOf({ sub: 'idp-1', role: 'patient', patient: '251248-1234' }, keys, 'jwt').patientKey).toBe(expected);
    // Ten digits gave a principal with no key: 403 on every request, with nothing saying why.
    expect(principalOf({ sub: 'idp-1', role: 'patient', patient: '2512481234' }, keys, 'jwt').patientKey).toBe(expected);
  });

  it("takes the hub's own tokens' pseudonymous key as it is", () => {
    expect(principalOf({ sub: 'p', role: 'patient', patientKey: expected }, keys, 'jwt').patientKey).toBe(expected);
  });

  it('gives no key to a patient claim that is no real date, nor to other roles', () => {
    expect(principalOf({ sub: 'idp-1', role: 'patient', patient: '321348-1234' }, keys, 'jwt').patientKey).toBeUndefined();
    expect(principalOf({ sub: 'op', role: 'operator' }, keys, 'jwt').patientKey).toBeUndefined();
  });
});
