#!/usr/bin/env bash
# One local ActiveMQ Classic broker for development: AMQP 1.0 on loopback only, persistent KahaDB.
#
#   broker.sh up        start in the background, wait until the AMQP port accepts connections (no-op if running)
#   broker.sh down      stop it: SIGTERM (graceful, the broker's shutdown hook closes KahaDB), SIGKILL after a grace
#   broker.sh status    print running/stopped (exit 0 if running, 3 if not)
#   broker.sh render DIR   write DIR/conf/activemq.xml and log4j2.properties (used by `run`)
#   broker.sh run       run the broker in the foreground; the shell is replaced by the JVM (exec), so the pid of
#                       this process is the JVM's. test/support/activemq.ts starts brokers this way.
#
# Env (defaults in brackets):
#   RTS_BROKER_PORT        AMQP port on 127.0.0.1 [5673] (5672 is RabbitMQ's on our machines)
#   RTS_BROKER_DATA        data dir: KahaDB, logs, generated conf [<repo>/data/activemq]
#   RTS_BROKER_NAME        brokerName [rts-local]
#   RTS_BROKER_HEAP        max heap [512m]
#   RTS_BROKER_JAVA_OPTS   extra JVM options
#   RTS_BROKER_START_TIMEOUT  seconds `up` waits for the port [60]
#   RTS_BROKER_STOP_TIMEOUT   seconds `down` waits after SIGTERM before SIGKILL [20]
#   RTS_BROKER_PIDFILE     `run` writes its pid here when set
#   RTS_ACTIVEMQ_HOME      skip provision.sh and use this ActiveMQ home (callers that provisioned already)
#   RTS_BROKER_USERS_FILE  a file of users, one per line: `name password [hub]` (# comments). When given, the broker
#                          takes only SASL PLAIN logins of these users (no anonymous, no non-SASL connections) and
#                          applies the RTS access map: a user marked `hub` may do anything; any other user is a
#                          connected system whose systemId is its name, and may send to the uplink and dead letter
#                          queues and consume only its own downlink queue `rts.downlink.<name>`; it reads no
#                          topic, ActiveMQ's advisory topics included (only hubs and the bridge do). Default queue
#                          names only. Names: [a-z0-9-], as systemIds are; passwords: no spaces. See
#                          docs/messaging.md, "Broker accounts".
#   RTS_BROKER_TLS_KEYSTORE   a PKCS12 keystore with the broker's key and certificate: the AMQP connector then takes
#                          TLS only (amqp+ssl://, clients connect with amqps://127.0.0.1:<port>)
#   RTS_BROKER_TLS_KEYSTORE_PASSWORD  its password
#   RTS_BROKER_TLS_TRUSTSTORE  with the keystore: a PKCS12 truststore of the client certificates (or their CAs) the
#                          connector accepts; it then takes only clients that present one (mutual TLS)
#   RTS_BROKER_TLS_TRUSTSTORE_PASSWORD  its password
#   RTS_BROKER_STORE_LIMIT  the broker's storeUsage limit, KahaDB's size on disk [4 gb]. The downlink queues may
#                          fill it to 80 %, the rest (uplink, dead letters) to 100 %; a send that finds no space is
#                          rejected (amqp:resource-limit-exceeded), never held. Tests render a small one to fill
#   RTS_BROKER_JOURNAL_FILE_LENGTH  KahaDB's journalMaxFileLength [32mb] (a store limit must hold a few such files)
#   RTS_BROKER_STATISTICS  on|off [on]: the statistics plugin, which answers the hub's reading of the dead letter
#                          queue's depth (rts_dead_letters); off renders a broker without it (README "The depth of
#                          the dead letter queue")
#   RTS_BROKER_NON_SASL    on|off [on]: connections without a SASL layer are taken; off requires one (ANONYMOUS
#                          will do without RTS_BROKER_USERS_FILE), as ActiveMQ's default and a production broker
#
# The generated config deliberately has: a single AMQP transport connector bound to 127.0.0.1, no OpenWire,
# no discoveryUri, no network connectors, no multicast of any kind; no web console (jetty.xml not imported);
# no JMX; schedulerSupport off; the broker's default (shared) dead letter strategy, since the application does
# its own dead-lettering on AMQP (ActiveMQ's redeliveryPolicy does not apply to AMQP consumers).
set -euo pipefail
# Owner-only files: the generated activemq.xml holds the broker accounts' passwords, KahaDB the messages (in clear
# with RTS_MESSAGE_SECURITY=off). The broker's JVM inherits the mask.
umask 077

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
port="${RTS_BROKER_PORT:-5673}"
data="${RTS_BROKER_DATA:-$repo/data/activemq}"
name="${RTS_BROKER_NAME:-rts-local}"
heap="${RTS_BROKER_HEAP:-512m}"
pidfile="$data/broker.pid"
outfile="$data/broker.out"

# xml_escape, plugins_xml (the <plugins>), access_map (RTS_BROKER_USERS_FILE's): shared with scripts/cluster/cluster.sh.
# shellcheck source=access-map.sh
source "$here/access-map.sh"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

alive() { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

render() {
  local base="$1" d n
  mkdir -p "$base/conf" "$data/tmp"
  d="$(xml_escape "$(cd "$data" && pwd)")"
  n="$(xml_escape "$name")"
  [[ "$port" =~ ^[0-9]+$ ]] || { echo "broker: RTS_BROKER_PORT must be a number" >&2; exit 2; }
  local nonsasl=true security="" scheme=amqp ssl="" trust="" clientauth=""
  if [[ -n "${RTS_BROKER_TLS_KEYSTORE:-}" ]]; then
    [[ -r "$RTS_BROKER_TLS_KEYSTORE" ]] || { echo "broker: RTS_BROKER_TLS_KEYSTORE $RTS_BROKER_TLS_KEYSTORE cannot be read" >&2; exit 2; }
    [[ -n "${RTS_BROKER_TLS_KEYSTORE_PASSWORD:-}" ]] || { echo "broker: RTS_BROKER_TLS_KEYSTORE_PASSWORD is required with RTS_BROKER_TLS_KEYSTORE" >&2; exit 2; }
    scheme=amqp+ssl
    if [[ -n "${RTS_BROKER_TLS_TRUSTSTORE:-}" ]]; then
      [[ -r "$RTS_BROKER_TLS_TRUSTSTORE" ]] || { echo "broker: RTS_BROKER_TLS_TRUSTSTORE $RTS_BROKER_TLS_TRUSTSTORE cannot be read" >&2; exit 2; }
      [[ -n "${RTS_BROKER_TLS_TRUSTSTORE_PASSWORD:-}" ]] || { echo "broker: RTS_BROKER_TLS_TRUSTSTORE_PASSWORD is required with RTS_BROKER_TLS_TRUSTSTORE" >&2; exit 2; }
      trust=" trustStore=\"file:$(xml_escape "$(cd "$(dirname "$RTS_BROKER_TLS_TRUSTSTORE")" && pwd)/$(basename "$RTS_BROKER_TLS_TRUSTSTORE")")\" trustStorePassword=\"$(xml_escape "$RTS_BROKER_TLS_TRUSTSTORE_PASSWORD")\" trustStoreType=\"PKCS12\""
      clientauth="&amp;transport.needClientAuth=true"
    fi
    ssl="    <sslContext>
      <sslContext keyStore=\"file:$(xml_escape "$(cd "$(dirname "$RTS_BROKER_TLS_KEYSTORE")" && pwd)/$(basename "$RTS_BROKER_TLS_KEYSTORE")")\" keyStorePassword=\"$(xml_escape "$RTS_BROKER_TLS_KEYSTORE_PASSWORD")\" keyStoreType=\"PKCS12\"$trust/>
    </sslContext>"
  fi
  # RTS_BROKER_NON_SASL=off: a SASL layer required without accounts (ANONYMOUS), as ActiveMQ's own default and the
  # production activemq.xml of scripts/cluster/README.md have it.
  [[ "${RTS_BROKER_NON_SASL:-on}" == off ]] && nonsasl=false
  if [[ -n "${RTS_BROKER_USERS_FILE:-}" ]]; then
    nonsasl=false
    security="$(access_map "$RTS_BROKER_USERS_FILE")"
  fi
  local plugins store_limit journal_file
  plugins="$(plugins_xml "$security")"
  store_limit="$(xml_escape "${RTS_BROKER_STORE_LIMIT:-4 gb}")"
  journal_file="$(xml_escape "${RTS_BROKER_JOURNAL_FILE_LENGTH:-32mb}")"
  cat >"$base/conf/activemq.xml" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/activemq/broker.sh: do not edit, it is rewritten on every start. -->
<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
                           http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="$n" dataDirectory="$d"
          persistent="true" useJmx="false" schedulerSupport="false">
$plugins
$ssl
    <persistenceAdapter>
      <!-- Default journal sync (every write fsynced before the broker settles the transfer as accepted). -->
      <kahaDB directory="$d/kahadb" journalMaxFileLength="$journal_file"/>
    </persistenceAdapter>
    <destinationPolicy>
      <policyMap>
        <policyEntries>
          <!-- Systems' downlink queues may fill the store only to 80 %: an offline system's queue that grows must
               not stop the uplink (nor the dead letter queue) as well. -->
          <policyEntry queue="rts.downlink.>" storeUsageHighWaterMark="80"/>
          <!-- What the broker itself dead-letters from the uplink queue (a copy it calls a duplicate paged in from the
               cursor, an expired message) goes to DLQ.rts.uplink, not the shared ActiveMQ.DLQ: the hub reads the
               cursor duplicates back from there (README "High availability"); and moves the rest to its rts.dlq. -->
          <policyEntry queue="rts.uplink">
            <deadLetterStrategy>
              <individualDeadLetterStrategy queuePrefix="DLQ." useQueueForQueueMessages="true"/>
            </deadLetterStrategy>
          </policyEntry>
        </policyEntries>
      </policyMap>
    </destinationPolicy>
    <!-- A send that finds no space is refused at once (the sender sees the transfer rejected), never held: ActiveMQ
         holds a blocked AMQP send on the connection's own thread, so everything else on that connection stopped. -->
    <systemUsage>
      <systemUsage sendFailIfNoSpace="true">
        <memoryUsage><memoryUsage percentOfJvmHeap="70"/></memoryUsage>
        <storeUsage><storeUsage limit="$store_limit"/></storeUsage>
        <tempUsage><tempUsage limit="1 gb"/></tempUsage>
      </systemUsage>
    </systemUsage>
    <transportConnectors>
      <!-- Loopback only; nothing is announced on the network. -->
      <transportConnector name="amqp"
        uri="$scheme://127.0.0.1:$port?maximumConnections=1000&amp;wireFormat.maxFrameSize=1048576&amp;wireFormat.allowNonSaslConnections=$nonsasl$clientauth"/>
    </transportConnectors>
    <shutdownHooks>
      <bean xmlns="http://www.springframework.org/schema/beans" class="org.apache.activemq.hooks.SpringContextHook"/>
    </shutdownHooks>
  </broker>
</beans>
XML
  cat >"$base/conf/log4j2.properties" <<PROPS
# Generated by scripts/activemq/broker.sh
rootLogger.level=INFO
rootLogger.appenderRef.console.ref=Console
logger.spring.name=org.springframework
logger.spring.level=WARN
logger.xbean.name=org.apache.xbean
logger.xbean.level=WARN
appender.console.type=Console
appender.console.name=Console
appender.console.layout.type=PatternLayout
appender.console.layout.pattern=%d{HH:mm:ss.SSS} %5p | %m%n
PROPS
}

run() {
  local home base java_bin launch
  home="${RTS_ACTIVEMQ_HOME:-$("$here/provision.sh")}"
  base="$data"
  render "$base"
  java_bin="${JAVA_HOME:+$JAVA_HOME/bin/}java"
  broker_launch "$home" "$java_bin"
  [[ -n "${RTS_BROKER_PIDFILE:-}" ]] && echo $$ >"$RTS_BROKER_PIDFILE"
  # shellcheck disable=SC2086
  exec "$java_bin" \
    -Xms64m "-Xmx$heap" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -XX:-UsePerfData \
    -Dlog4j2.disable.jmx=true \
    -Djava.awt.headless=true "-Djava.io.tmpdir=$data/tmp" \
    --add-reads=java.xml=java.logging \
    --add-opens java.base/java.security=ALL-UNNAMED \
    --add-opens java.base/java.net=ALL-UNNAMED \
    --add-opens java.base/java.lang=ALL-UNNAMED \
    --add-opens java.base/java.util=ALL-UNNAMED \
    --add-opens java.naming/javax.naming.spi=ALL-UNNAMED \
    --add-opens java.base/java.util.concurrent=ALL-UNNAMED \
    --add-opens java.base/java.util.concurrent.atomic=ALL-UNNAMED \
    "-Dactivemq.home=$home" "-Dactivemq.base=$base" "-Dactivemq.conf=$base/conf" "-Dactivemq.data=$data" \
    "-Dlog4j2.configurationFile=$base/conf/log4j2.properties" \
    ${RTS_BROKER_JAVA_OPTS:-} \
    "${launch[@]}" start "xbean:file:$base/conf/activemq.xml"
}

up() {
  if alive; then echo "broker: already running (pid $(cat "$pidfile")) on 127.0.0.1:$port"; return 0; fi
  if port_open "$port"; then echo "broker: 127.0.0.1:$port is already in use by something else" >&2; exit 1; fi
  mkdir -p "$data"
  "$here/provision.sh" >/dev/null
  local t0=$SECONDS timeout="${RTS_BROKER_START_TIMEOUT:-60}"
  RTS_BROKER_PIDFILE="$pidfile" nohup "$here/broker.sh" run >>"$outfile" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$pidfile"
  until port_open "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "broker: JVM exited during startup; last log lines:" >&2; tail -n 30 "$outfile" >&2; rm -f "$pidfile"; exit 1
    fi
    if (( SECONDS - t0 > timeout )); then
      echo "broker: no AMQP listener on 127.0.0.1:$port after ${timeout}s; see $outfile" >&2; exit 1
    fi
    sleep 0.2
  done
  # The URL clients use: with a keystore the connector takes TLS only (amqp:// there fails the handshake).
  local client_scheme=amqp
  [[ -n "${RTS_BROKER_TLS_KEYSTORE:-}" ]] && client_scheme=amqps
  echo "broker: up (pid $pid) $client_scheme://127.0.0.1:$port data=$data in $(( SECONDS - t0 ))s"
}

down() {
  if ! alive; then rm -f "$pidfile"; echo "broker: not running"; return 0; fi
  local pid timeout="${RTS_BROKER_STOP_TIMEOUT:-20}" i=0
  pid="$(cat "$pidfile")"
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if (( i >= timeout * 5 )); then echo "broker: still running after ${timeout}s, SIGKILL" >&2; kill -KILL "$pid" 2>/dev/null || true; break; fi
    sleep 0.2; i=$((i + 1))
  done
  rm -f "$pidfile"
  echo "broker: down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) if alive; then echo "running (pid $(cat "$pidfile"))"; else echo "stopped"; exit 3; fi ;;
  render) [[ -n "${2:-}" ]] || { echo "usage: broker.sh render DIR" >&2; exit 2; }; render "$2" ;;
  run) run ;;
  *) echo "usage: broker.sh up|down|status|run|render DIR" >&2; exit 2 ;;
esac
