/**
 * `Date` (and only `Date`) set to `iso`, advancing with real time when `advancing`: timers, `performance`, `hrtime`
 * and the event loop stay the real ones, so sockets, child processes and timeouts behave as on any day. Undo with
 * `jest.useRealTimers()`.
 */
export const fakeDateAt = (iso: string, advancing = true): void => {
  jest.useFakeTimers({
    now: new Date(iso),
    advanceTimers: advancing,
    doNotFake: ['hrtime', 'nextTick', 'performance', 'queueMicrotask', 'setImmediate', 'clearImmediate', 'setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'],
  });
};
