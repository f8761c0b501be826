// Why the database is unavailable, as the start's and the health check's messages say it.
import { pgUnavailableReason } from '../../src/adapters/event-store/postgres/pg-unavailable';

describe('pgUnavailableReason', () => {
  it("names the driver's or Node's code, node-postgres's timeouts, and nothing else", () => {
    expect(pgUnavailableReason(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }))).toBe('ECONNREFUSED');
    expect(pgUnavailableReason(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }))).toBe('57P01');
    expect(pgUnavailableReason(new Error('Connection terminated due to connection timeout'))).toBe('timed out');
    expect(pgUnavailableReason(new Error('something else'))).toBeUndefined();
    expect(pgUnavailableReason(undefined)).toBeUndefined();
  });

  it("takes the first attempt's code of Node's AggregateError (a host of several addresses, or unroutable): it said no reason", () => {
    const aggregate = new AggregateError([Object.assign(new Error('connect ENETUNREACH 10.255.255.1:5432'), { code: 'ENETUNREACH' }), Object.assign(new Error('connect EHOSTUNREACH'), { code: 'EHOSTUNREACH' })], '');
    expect(pgUnavailableReason(aggregate)).toBe('ENETUNREACH');
    expect(pgUnavailableReason(new AggregateError([new Error('no code')], ''))).toBeUndefined();
  });
});
