#!/usr/bin/env bash
# HA soak: the cluster of cluster.sh in its own namespace, the discovery clients of ha-client.ts streaming
# durable messages inside it, and kill -9 of a group master again and again (alternating g1, g2). Fails when a
# message the broker accepted was not received. Everything is torn down on exit, failure or Ctrl-C.
#
# Env: RTS_HA_SOAK_KILLS [30] kills; RTS_HA_SOAK_PAUSE [4] seconds between kills; RTS_HA_SOAK_RATE [100] msg/s;
#      plus cluster.sh's (namespace defaults to rts-ha-soak here).
#
# RTS_HA_SOAK_MODE=hub: the hub-level scenario instead (test/integration/ha-hub.int.spec.ts: the hub and two SDK
# city systems inside the namespace, kill -9 of both groups' masters per round, hub SIGKILL + restart, a fifth
# node; 0 lost, 0 duplicate events, downlink complete), with RTS_HA_SOAK_ROUNDS [10] kill rounds per run,
# RTS_HA_SOAK_RUNS [1] runs and RTS_HA_SOAK_RATE [100] registrations per second per system.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
[[ $(id -u) -eq 0 ]] || { echo "soak: needs root (ip netns)" >&2; exit 1; }
if [[ "${RTS_HA_SOAK_MODE:-client}" == hub ]]; then
  rounds="${RTS_HA_SOAK_ROUNDS:-10}"; runs="${RTS_HA_SOAK_RUNS:-1}"
  [[ "$rounds" =~ ^[0-9]+$ && "$rounds" -ge 1 && "$rounds" -le 200 ]] || { echo "soak: RTS_HA_SOAK_ROUNDS must be 1..200" >&2; exit 2; }
  [[ "$runs" =~ ^[0-9]+$ && "$runs" -ge 1 && "$runs" -le 100 ]] || { echo "soak: RTS_HA_SOAK_RUNS must be 1..100" >&2; exit 2; }
  cd "$repo"
  for run in $(seq 1 "$runs"); do
    echo "soak (hub): run $run/$runs, $rounds kill rounds"
    # The path first: --selectProjects takes every word after it as a project name.
    RTS_HA_HUB_ROUNDS="$rounds" RTS_HA_HUB_RATE="${RTS_HA_SOAK_RATE:-100}" npx jest test/integration/ha-hub.int.spec.ts --testTimeout=$(( (rounds * 30 + 300) * 1000 ))
  done
  exit 0
fi
export RTS_HA_NETNS="${RTS_HA_NETNS:-rts-ha-soak}"
export RTS_HA_DIR="${RTS_HA_DIR:-$(mktemp -d /tmp/rts-ha-soak.XXXXXX)}"
export RTS_HA_GROUP="${RTS_HA_GROUP:-rts-ha-soak}"
kills="${RTS_HA_SOAK_KILLS:-30}"; pause="${RTS_HA_SOAK_PAUSE:-4}"; rate="${RTS_HA_SOAK_RATE:-100}"
[[ "$kills" =~ ^[0-9]+$ && "$kills" -le 1000 ]] || { echo "soak: RTS_HA_SOAK_KILLS must be 0..1000" >&2; exit 2; }
work="$(mktemp -d /tmp/rts-ha-soak-run.XXXXXX)"
client_pid=""
cleanup() {
  [[ -n "$client_pid" ]] && kill -KILL "$client_pid" 2>/dev/null || true
  exec 7>&- 2>/dev/null || true
  bash "$here/cluster.sh" down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

bash "$here/cluster.sh" up
mkfifo "$work/in"
cd "$repo"
timeout $(( kills * (pause + 40) + 300 )) ip netns exec "$RTS_HA_NETNS" node -r ./test/support/ts-register.js \
  scripts/cluster/ha-client.ts "{\"group\":\"$RTS_HA_GROUP\",\"rate\":$rate,\"queue\":\"rts.ha.soak\"}" \
  <"$work/in" >"$work/out" 2>"$work/err" &
client_pid=$!
exec 7>"$work/in"
for _ in $(seq 1 600); do grep -q '"ev":"ready"' "$work/out" && break; kill -0 "$client_pid" 2>/dev/null || break; sleep 0.1; done
grep -q '"ev":"ready"' "$work/out" || { echo "soak: client not ready" >&2; cat "$work/err" >&2; exit 1; }
sleep "$pause"
: >"$work/takeovers"
for i in $(seq 1 "$kills"); do
  g="g$(( (i - 1) % 2 + 1 ))"
  line="$(bash "$here/cluster.sh" kill-master "$g" | tail -1)"
  echo "soak: kill $i/$kills: $line"
  sed -n 's/.*ms=\([0-9]*\).*/\1/p' <<<"$line" >>"$work/takeovers"
  sleep "$pause"
done
echo stop >&7
for _ in $(seq 1 1200); do grep -q '"ev":"report"' "$work/out" && break; kill -0 "$client_pid" 2>/dev/null || break; sleep 0.1; done
report="$(grep '"ev":"report"' "$work/out" || true)"
[[ -n "$report" ]] || { echo "soak: no report" >&2; tail -n 20 "$work/err" >&2; exit 1; }
node -e '
const r = JSON.parse(process.argv[1]);
const t = require("fs").readFileSync(process.argv[2], "utf8").trim().split("\n").filter(Boolean).map(Number).sort((a, b) => a - b);
const q = (p) => t.length ? t[Math.min(t.length - 1, Math.ceil(p * t.length) - 1)] : NaN;
const pauses = [...r.failovers.producer, ...r.failovers.consumer].map((f) => f.pauseMs).sort((a, b) => a - b);
const qp = (p) => pauses.length ? pauses[Math.min(pauses.length - 1, Math.ceil(p * pauses.length) - 1)] : NaN;
const gaps = r.gaps.map((g) => g.ms).sort((a, b) => a - b);
console.log(`soak: kills ${t.length}; takeover ms p50 ${q(0.5)} p99 ${q(0.99)} max ${t[t.length - 1]}`);
console.log(`soak: client failover pause ms p50 ${qp(0.5)} p99 ${qp(0.99)} (n=${pauses.length}); longest accept gap ${gaps[gaps.length - 1] ?? 0} ms`);
console.log(`soak: accepted ${r.accepted} received ${r.received} lost ${r.lost} duplicate deliveries (deduped) ${r.duplicates} resends ${r.retries} failed sends ${r.failedSends}`);
process.exit(r.lost === 0 && r.failedSends === 0 ? 0 : 1);
' "$report" "$work/takeovers"
