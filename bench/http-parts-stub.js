'use strict';
/**
 * Preloaded (`node --require`) into the hub by bench/http-parts.js: leaves out a part of POST /observations so that
 * the rest can be measured alone. HTTP_PARTS_STUB says which:
 *
 *   audit   the audit trail's record() resolves at once: nothing is appended (no audit event, no second commit)
 *   both    that, and TeleMedService.record answers at once with a made-up document: no store, no commit at all
 *
 * For measuring only: a hub so started stores no audit trail (and with `both`, no readings).
 */
const path = require('node:path');

const stub = process.env.HTTP_PARTS_STUB;
const dist = process.env.HTTP_PARTS_DIST;
if (!dist || (stub !== 'audit' && stub !== 'both')) throw new Error('http-parts-stub.js: set HTTP_PARTS_STUB (audit | both) and HTTP_PARTS_DIST');
const { AuditTrail } = require(path.join(dist, 'application/audit/audit-trail'));
AuditTrail.prototype.record = () => Promise.resolve();
if (stub === 'both') {
  const { TeleMedService } = require(path.join(dist, 'application/telemed'));
  let n = 0;
  TeleMedService.prototype.record = async (observation) => ({ uniqueId: `2.25.${++n}`, created: true, measuredAt: observation.measuredAt });
}
