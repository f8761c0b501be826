#!/usr/bin/env bash
# Fetch the ActiveMQ Classic binary distribution through Maven into .cache/activemq/ and print its home.
#
# Idempotent: when the distribution is already unpacked (marker file present) this is a fast no-op that only
# prints the path. Works from a clean clone (CI calls it from .ci/run). Needs java + mvn on PATH.
#
# Env:
#   RTS_ACTIVEMQ_VERSION   distribution version (default 5.18.3: the newest apache-activemq bin tarball on the
#                          Maven Central we can reach; 6.1.x is published only as separate jars there)
#   RTS_ACTIVEMQ_CACHE     cache folder (default <repo>/.cache/activemq)
#
# stdout: exactly one line, the ActiveMQ home. Progress and errors go to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
version="${RTS_ACTIVEMQ_VERSION:-5.18.3}"
cache="${RTS_ACTIVEMQ_CACHE:-$repo/.cache/activemq}"
home="$cache/apache-activemq-$version"
marker="$home/.rts-provisioned"

if [[ -f "$marker" ]]; then
  echo "$home"
  exit 0
fi

command -v mvn >/dev/null || { echo "provision: mvn not found on PATH" >&2; exit 1; }
command -v java >/dev/null || { echo "provision: java not found on PATH" >&2; exit 1; }

mkdir -p "$cache"
# Serialise concurrent provisioning (parallel jest workers, CI jobs) on one lock.
exec 9>"$cache/.provision.lock"
if command -v flock >/dev/null; then flock 9; fi
if [[ -f "$marker" ]]; then echo "$home"; exit 0; fi

start=$(date +%s)
dl="$cache/download"
tarball="$dl/apache-activemq-$version-bin.tar.gz"
if [[ ! -s "$tarball" ]]; then
  echo "provision: fetching org.apache.activemq:apache-activemq:$version:tar.gz:bin via Maven" >&2
  mkdir -p "$dl"
  # Run from the cache dir so no project pom is picked up; pin the plugin version for reproducibility.
  (cd "$cache" && mvn -q -B -Dstyle.color=never \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
    -Dartifact="org.apache.activemq:apache-activemq:$version:tar.gz:bin" \
    -DoutputDirectory="$dl" -Dmdep.overWriteReleases=false 1>&2)
fi

tmp="$(mktemp -d "$cache/.unpack.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$tarball" -C "$tmp"
[[ -d "$tmp/apache-activemq-$version/lib" ]] || { echo "provision: unexpected tarball layout" >&2; exit 1; }
rm -rf "$home"
mv "$tmp/apache-activemq-$version" "$home"
# Not needed by us and large: drop web apps and examples (we never start jetty).
rm -rf "$home/webapps-demo" "$home/examples" "$home/docs"
echo "$version" >"$marker"
# The tarball stays in ~/.m2, so a later re-provision is local; no need to keep a second copy.
rm -rf "$dl"
echo "provision: ActiveMQ $version ready in $(( $(date +%s) - start ))s" >&2
echo "$home"
