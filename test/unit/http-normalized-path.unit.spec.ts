import { normalizedPath } from '../../src/adapters/http/server';

/** What the router sees: a path's escaped unreserved characters decoded, every other escape and the query as sent. */
describe('normalizedPath', () => {
  it.each([
    ['/patients/export', '/patients/export'],
    ['/patients/%65xport', '/patients/export'],
    ['/patients/%65%58%2D%2e%5F%7e%30%39', '/patients/eX-._~09'],
    // Not unreserved: a slash, a space, a percent sign, a question mark stay escaped.
    ['/documents/%2F%20%25%3F', '/documents/%2F%20%25%3F'],
    ['/patients/%7B%60%40%5B', '/patients/%7B%60%40%5B'],
    // The query is the route's to read.
    ['/patients/%65xport?unknown=%65rase', '/patients/export?unknown=%65rase'],
    ['/patients/export?x=%65', '/patients/export?x=%65'],
    // A malformed escape is left for the router to refuse (400).
    ['/patients/%zz%6', '/patients/%zz%6'],
  ])('%s -> %s', (url, expected) => expect(normalizedPath(url)).toBe(expected));
});
