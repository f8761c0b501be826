#!/usr/bin/env bash
# provision.sh's path for ActiveMQ 6.x: the broker's jars, fetched through Maven, installed into <cache>/activemq-<v>/lib
# only when they are exactly the jars pinned in scripts/activemq/jars-<v>.sha512. Called by provision.sh (which
# documents the environment); usage: provision-jars.sh VERSION CACHE. stdout: the home; progress and errors: stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$1"
cache="$2"
pins="$here/jars-$version.sha512"
home="$cache/activemq-$version"
marker="$home/.rts-provisioned"

if [[ ! -f "$pins" ]]; then
  echo "provision: refused: no jars are pinned for ActiveMQ $version (scripts/activemq/jars-$version.sha512 does not exist)." >&2
  echo "provision: pin them first: resolve scripts/activemq/pom.xml with -Dactivemq.version=$version, check each jar against Maven Central's published checksums and the Apache release's signatures, and list '<sha512>  group:artifact:version  <SPDX licence>' per jar (see jars-6.3.1.sha512)" >&2
  exit 1
fi
# The pins as "<sha512> <file name>" (copy-dependencies names a jar artifact-version.jar), sorted by name.
expected="$(awk '!/^#/ && NF >= 2 { n = split($2, c, ":"); if (n != 3 || $1 !~ /^[0-9a-f]+$/ || length($1) != 128) { print "bad " NR; bad = 1; exit } line[++k] = $1 " " c[2] "-" c[3] ".jar" }
  END { if (!bad) for (i = 1; i <= k; i++) print line[i] }' "$pins" | sort -k2)"
if [[ -z "$expected" || "$expected" == bad* ]]; then
  echo "provision: refused: scripts/activemq/jars-$version.sha512 is not a list of '<sha512 in 128 hex digits>  group:artifact:version  <licence>' lines${expected:+ (line ${expected#bad })}" >&2
  exit 1
fi
# The marker names the pins the installed jars were checked against: other pins mean a check (and a fetch) again.
stamp="$version jars sha512:$(printf '%s\n' "$expected" | sha512sum | cut -d' ' -f1)"

# shellcheck source=provision-common.sh
source "$here/provision-common.sh"
provisioned_or_lock "$cache"

start=$(date +%s)
tmp="$(mktemp -d "$cache/.jars.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "provision: fetching ActiveMQ $version's jars via Maven (scripts/activemq/pom.xml)" >&2
# A copy of the pom in the temporary folder: Maven writes nothing beside the repository's pom then. The plugin's
# version is pinned for reproducibility; -C fails on a checksum that does not match the server's.
cp "$here/pom.xml" "$tmp/pom.xml"
(cd "$tmp" && mvn -q -B -C -Dstyle.color=never -f "$tmp/pom.xml" "-Dactivemq.version=$version" \
  org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
  -DoutputDirectory="$tmp/lib" -DincludeScope=runtime 1>&2)

actual="$(cd "$tmp/lib" && sha512sum -- *.jar | awk '{ print $1, $2 }' | sort -k2)"
if [[ "$actual" != "$expected" ]]; then
  echo "provision: refused: the jars Maven resolved for ActiveMQ $version are not the pinned ones, nothing installed" >&2
  diff <(printf '%s\n' "$expected") <(printf '%s\n' "$actual") | awk '/^</ { print "provision:   pinned, not fetched: " $3 " sha512 " $2 } /^>/ { print "provision:   fetched, not pinned: " $3 " sha512 " $2 }' >&2 || true
  echo "provision: a damaged download: delete Maven's copies of those jars (~/.m2/repository) and run again; otherwise the dependency tree or a release changed: do not run it before you have checked and pinned it" >&2
  exit 1
fi
echo "provision: the $(printf '%s\n' "$expected" | wc -l) jars match their pinned SHA-512" >&2

rm -rf "$home"
mkdir -p "$home"
mv "$tmp/lib" "$home/lib"
echo "$stamp" >"$marker"
echo "provision: ActiveMQ $version ready in $(( $(date +%s) - start ))s" >&2
echo "$home"
