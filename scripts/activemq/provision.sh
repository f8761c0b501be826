#!/usr/bin/env bash
# Fetch ActiveMQ Classic through Maven into .cache/activemq/ and print its home.
#
# Two kinds of home:
# - 6.x (the default, 6.3.1): the broker's jars, which Maven Central publishes one by one (no 6.x bin tarball is
#   served there). scripts/activemq/pom.xml names the modules the hub's brokers use (broker, AMQP, JAAS, KahaDB, the
#   xbean configuration and the console's launcher), with Spring and log4j at the versions ActiveMQ 6.3.1 is built
#   with; `mvn dependency:copy-dependencies` puts them and what they need into <home>/lib. No bin/activemq.jar:
#   broker.sh and cluster.sh start org.apache.activemq.console.Main with lib/* as the classpath.
# - 5.x (RTS_ACTIVEMQ_VERSION=5.18.3, the default until 2026-12-05): the binary distribution
#   org.apache.activemq:apache-activemq:<version>:tar.gz:bin, unpacked: the newest distribution Maven Central serves
#   here; out of upstream support. Kept for rolling back a broker (README "Upgrading and rolling back") and for the
#   in-place upgrade test.
#
# Idempotent: when the home is already in place (marker file present, naming the same pins) this is a fast no-op that
# only prints the path. Works from a clean clone (CI calls it from .ci/run). Needs java + mvn on PATH.
#
# Env:
#   RTS_ACTIVEMQ_VERSION   version [6.3.1]; 5.x takes the tarball path
#   RTS_ACTIVEMQ_CACHE     cache folder (default <repo>/.cache/activemq)
#   RTS_ACTIVEMQ_SHA512    5.x only: the tarball's SHA-512 (128 hex digits). Needed for a version that
#                          scripts/activemq/checksums.sha512 does not pin; when given, it is the one checked.
#
# Integrity: nothing is installed unless it is exactly what the project pinned.
# - 6.x: lib/ must hold exactly the jars listed in scripts/activemq/jars-<version>.sha512, each with its SHA-512
#   there. A jar missing, a jar more (a changed dependency tree) or a jar with another hash is refused with exit 1.
# - 5.x: the tarball's SHA-512 must be the one in checksums.sha512 (taken from the tarball Maven fetched and
#   cross-checked against the .sha1 and .md5 Maven Central publishes beside it).
# Maven's own check (-C, strict) compares with a checksum from the same server as the file, so it catches a damaged
# download, not a replaced one; the pins catch both.
#
# stdout: exactly one line, the ActiveMQ home. Progress and errors go to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
version="${RTS_ACTIVEMQ_VERSION:-6.3.1}"
cache="${RTS_ACTIVEMQ_CACHE:-$repo/.cache/activemq}"

[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "provision: refused: RTS_ACTIVEMQ_VERSION must be a version like 6.3.1" >&2; exit 1; }
if [[ "$version" != 5.* ]]; then
  exec bash "$here/provision-jars.sh" "$version" "$cache"
fi
home="$cache/apache-activemq-$version"
marker="$home/.rts-provisioned"
file="apache-activemq-$version-bin.tar.gz"

expected="${RTS_ACTIVEMQ_SHA512:-}"
if [[ -z "$expected" ]]; then
  expected="$(awk -v f="$file" '$2 == f || $2 == "*" f { print $1 }' "$here/checksums.sha512")"
fi
if [[ -z "$expected" ]]; then
  echo "provision: refused: no SHA-512 is pinned for ActiveMQ $version ($file is not in scripts/activemq/checksums.sha512)." >&2
  echo "provision: set RTS_ACTIVEMQ_SHA512 to the tarball's SHA-512, taken from the Apache release's $file.sha512 (https://archive.apache.org/dist/activemq/$version/), not from the server that serves the tarball" >&2
  exit 1
fi
expected="${expected,,}"
if [[ ! "$expected" =~ ^[0-9a-f]{128}$ ]]; then
  echo "provision: refused: the SHA-512 for $file must be 128 hex digits (RTS_ACTIVEMQ_SHA512 or checksums.sha512)" >&2
  exit 1
fi
# The marker names the hash the unpacked tree was checked against: a home unpacked by an earlier provision.sh (no
# hash) or under another hash is unpacked again, from a checked tarball.
stamp="$version sha512:$expected"

# shellcheck source=provision-common.sh
source "$here/provision-common.sh"
provisioned_or_lock "$cache"

start=$(date +%s)
dl="$cache/download"
tarball="$dl/$file"
if [[ ! -s "$tarball" ]]; then
  echo "provision: fetching org.apache.activemq:apache-activemq:$version:tar.gz:bin via Maven" >&2
  mkdir -p "$dl"
  # Run from the cache dir so no project pom is picked up; pin the plugin version for reproducibility.
  (cd "$cache" && mvn -q -B -C -Dstyle.color=never \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
    -Dartifact="org.apache.activemq:apache-activemq:$version:tar.gz:bin" \
    -DoutputDirectory="$dl" -Dmdep.overWriteReleases=false 1>&2)
fi

actual="$(sha512sum "$tarball" | cut -d' ' -f1)"
if [[ "$actual" != "$expected" ]]; then
  rm -f "$tarball"
  echo "provision: refused: $file is not the pinned tarball, nothing unpacked" >&2
  echo "provision:   expected SHA-512 $expected" >&2
  echo "provision:   got      SHA-512 $actual" >&2
  echo "provision: a damaged download: delete Maven's copy (~/.m2/repository/org/apache/activemq/apache-activemq/$version/) and run again; if it is not damaged, it is not the release the project pinned: do not run it" >&2
  exit 1
fi
echo "provision: $file matches its pinned SHA-512" >&2

tmp="$(mktemp -d "$cache/.unpack.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$tarball" -C "$tmp"
[[ -d "$tmp/apache-activemq-$version/lib" ]] || { echo "provision: unexpected tarball layout" >&2; exit 1; }
rm -rf "$home"
mv "$tmp/apache-activemq-$version" "$home"
# Not needed by us and large: drop web apps and examples (we never start jetty).
rm -rf "$home/webapps-demo" "$home/examples" "$home/docs"
echo "$stamp" >"$marker"
# The tarball stays in ~/.m2, so a later re-provision is local; no need to keep a second copy.
rm -rf "$dl"
echo "provision: ActiveMQ $version ready in $(( $(date +%s) - start ))s" >&2
echo "$home"
