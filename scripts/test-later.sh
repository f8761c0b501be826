#!/usr/bin/env bash
# The tests again, on a clock 40 days ahead (RTS_TEST_LATER_OFFSET, faketime's syntax): a test that passes only
# until some date fails here weeks before that date, not on the morning it comes. On 2026-12-04 the upgrade tests
# failed from 09:41 UTC: their fixture's consultation offers, written the day before, ran out that hour.
#
# libfaketime (Debian's package `faketime`) shifts the clock of this process tree. Left out, as they run well only
# on the real clock: the tests that start a broker or a browser (the JVM and Chromium misbehave under libfaketime),
# and two that hold the hub's clock against the PostgreSQL server's, which keeps the real one. Every one of them
# runs on the real clock in `jest`, before this.
#
# Without faketime this says so in one line and passes; with RTS_REQUIRE_FAKETIME=1 (set by .ci/run, which installs
# it) it fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."

offset="${RTS_TEST_LATER_OFFSET:-+40d}"
if ! command -v faketime >/dev/null; then
  if [[ "${RTS_REQUIRE_FAKETIME:-}" == 1 ]]; then
    echo "test:later: faketime not found (Debian: apt-get install faketime), and RTS_REQUIRE_FAKETIME=1" >&2
    exit 1
  fi
  echo "test:later: skipped, faketime not found (Debian: apt-get install faketime)"
  exit 0
fi

mapfile -t files < <(
  ls test/unit/*.spec.ts test/contract/*.spec.ts
  grep -LE 'broker|activemq|amqp|chromium|playwright' test/integration/*.spec.ts test/e2e/*.spec.ts
)
mapfile -t files < <(printf '%s\n' "${files[@]}" | grep -vE '/(clock-check\.int|event-store-postgres\.contract)\.spec\.ts$')
if (( ${#files[@]} < 100 )); then
  echo "test:later: only ${#files[@]} test files selected; the selection is broken" >&2
  exit 1
fi

echo "test:later: ${#files[@]} test files with the clock at $offset ($(FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f "$offset" date -u +%FT%TZ))"
# The monotonic clocks stay real: timers and timeouts run as on any day.
export FAKETIME_DONT_FAKE_MONOTONIC=1
exec faketime -f "$offset" npx jest --runTestsByPath "${files[@]}"
