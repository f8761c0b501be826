#!/usr/bin/env bash
# A high-availability ActiveMQ cluster for development and fault tests, inside a network namespace of its own.
#
#   cluster.sh up                 create the namespace, start groups g1 and g2 (nodes g1a g1b g2a g2b): the first
#                                 node of each group first, as its master, then the others, as waiting slaves
#   cluster.sh down               stop every JVM (TERM, KILL after a grace), delete the namespace and the state dir
#   cluster.sh status             one line per node: name pid role(master|slave|down) amqp port
#   cluster.sh kill-master GROUP  kill -9 the master of GROUP (g1, g2, ...), restart the killed node as the new
#                                 slave, wait for the takeover; prints `takeover GROUP OLD->NEW ms=N`
#   cluster.sh start-node NAME    start one more node at runtime (e.g. g3a: a new group, or a third node of a group)
#   cluster.sh stop-node NAME     graceful stop (SIGTERM: the broker sends its dead packet)
#   cluster.sh kill-node NAME     kill -9 one node, no restart
#   cluster.sh exec CMD...        run CMD inside the namespace (e.g. a node client)
#
# Shape (scripts/cluster/README.md has the why and the production configuration):
#   - every node: ActiveMQ 6.3.1 (scripts/activemq/provision.sh's default; RTS_ACTIVEMQ_VERSION for another), AMQP
#     on 127.0.0.1:<5700+n> and OpenWire on 127.0.0.1:<61600+n> of the namespace's loopback,
#     n = 2*(group-1) + (1 for a, 2 for b, 3 for c); g1a 5701, g1b 5702, g2a 5703, g2b 5704, g3a 5705 ...
#   - a group = master/slave on one shared KahaDB directory with a file lock; the slave polls the lock every
#     RTS_HA_LOCK_ACQUIRE_MS and opens no port until it holds it.
#   - the AMQP connector is announced by multicast (group $RTS_HA_GROUP) for clients; the OpenWire connector on
#     group "$RTS_HA_GROUP-net" for the network connectors: groups form a network of brokers by discovery.
#     Only a master announces (a slave has not started its connectors).
#
# HARD RULE: multicast never leaves the namespace. The namespace has only its own loopback (up, multicast on,
# route 224.0.0.0/4 dev lo); every discovery URI pins joinNetworkInterface=lo&networkInterface=lo.
#
# Env (defaults in brackets):
#   RTS_HA_NETNS            namespace name [rts-ha]
#   RTS_HA_DIR              state dir: per-node conf/logs, per-group shared KahaDB [<repo>/data/ha/<netns>]
#   RTS_HA_GROUP            client discovery group [default]
#   RTS_HA_MCAST_ADDR       multicast address [239.255.2.3]
#   RTS_HA_MCAST_PORT       multicast port [6155]
#   RTS_HA_HEAP             max heap per node [128m]
#   RTS_HA_LOCK_ACQUIRE_MS  slave's lock poll interval [300]
#   RTS_HA_LOCK_KEEPALIVE_MS master's lock keep-alive check [1000]
#   RTS_HA_START_TIMEOUT    seconds to wait for masters / takeover [90]
#   RTS_ACTIVEMQ_HOME       use this ActiveMQ home instead of provision.sh
#   RTS_HA_TLS_KEYSTORE     a PKCS12 keystore with the nodes' key and certificate: every node's AMQP connector then
#                           takes TLS only (amqp+ssl://) and announces amqp+ssl://127.0.0.1:<port>, which clients
#                           with discovery reach over TLS (RTS_BROKER_TLS_CA / the SDK's tls.ca) [none: plain AMQP]
#   RTS_HA_TLS_KEYSTORE_PASSWORD  its password (required with the keystore)
#   RTS_HA_USERS_FILE       broker accounts, as broker.sh's RTS_BROKER_USERS_FILE (`name password [hub]` per line):
#                           every node then takes only SASL logins of these users with the RTS access map, and the
#                           network bridges between groups log in as the file's first `hub` user [none: no logins]
set -euo pipefail
# Owner-only files: the generated activemq.xml holds the broker accounts' passwords, KahaDB the messages (in clear
# with RTS_MESSAGE_SECURITY=off). The broker's JVM inherits the mask.
umask 077

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
ns="${RTS_HA_NETNS:-rts-ha}"
[[ "$ns" =~ ^[A-Za-z0-9_.-]{1,32}$ ]] || { echo "cluster: bad RTS_HA_NETNS" >&2; exit 2; }
dir="${RTS_HA_DIR:-$repo/data/ha/$ns}"
group="${RTS_HA_GROUP:-default}"
[[ "$group" =~ ^[A-Za-z0-9_-]{1,40}$ ]] || { echo "cluster: bad RTS_HA_GROUP" >&2; exit 2; }
maddr="${RTS_HA_MCAST_ADDR:-239.255.2.3}"
[[ "$maddr" =~ ^2(2[4-9]|3[0-9])\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || { echo "cluster: RTS_HA_MCAST_ADDR must be a multicast address" >&2; exit 2; }
mport="${RTS_HA_MCAST_PORT:-6155}"
[[ "$mport" =~ ^[0-9]+$ ]] || { echo "cluster: bad RTS_HA_MCAST_PORT" >&2; exit 2; }
heap="${RTS_HA_HEAP:-128m}"
acquire_ms="${RTS_HA_LOCK_ACQUIRE_MS:-300}"
keepalive_ms="${RTS_HA_LOCK_KEEPALIVE_MS:-1000}"
start_timeout="${RTS_HA_START_TIMEOUT:-90}"
tls_keystore="${RTS_HA_TLS_KEYSTORE:-}"
if [[ -n "$tls_keystore" ]]; then
  [[ -r "$tls_keystore" ]] || { echo "cluster: RTS_HA_TLS_KEYSTORE $tls_keystore cannot be read" >&2; exit 2; }
  [[ -n "${RTS_HA_TLS_KEYSTORE_PASSWORD:-}" ]] || { echo "cluster: RTS_HA_TLS_KEYSTORE_PASSWORD is required with RTS_HA_TLS_KEYSTORE" >&2; exit 2; }
  tls_keystore="$(cd "$(dirname "$tls_keystore")" && pwd)/$(basename "$tls_keystore")"
fi
users_file="${RTS_HA_USERS_FILE:-}"
if [[ -n "$users_file" ]]; then
  [[ -r "$users_file" ]] || { echo "cluster: RTS_HA_USERS_FILE $users_file cannot be read" >&2; exit 2; }
fi
script_name=cluster
# shellcheck source=../activemq/access-map.sh
source "$repo/scripts/activemq/access-map.sh"

now_ms() { date +%s%3N; }
need_root() { [[ $(id -u) -eq 0 ]] || { echo "cluster: needs root (ip netns)" >&2; exit 1; }; }
in_ns() { ip netns exec "$ns" "$@"; }
ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$ns"; }

# node name -> index n (g1a=1, g1b=2, g2a=3 ... up to 3 nodes per group: a, b, c -> offsets 1, 2 and 50+)
node_index() {
  local name="$1"
  [[ "$name" =~ ^g([1-9])([abc])$ ]] || { echo "cluster: node names are g<1-9><a|b|c>, got '$name'" >&2; exit 2; }
  local g="${BASH_REMATCH[1]}" l="${BASH_REMATCH[2]}"
  case "$l" in a) echo $(( 2 * (g - 1) + 1 )) ;; b) echo $(( 2 * (g - 1) + 2 )) ;; c) echo $(( 50 + g )) ;; esac
}
node_group() { echo "${1:0:2}"; }
amqp_port() { echo $(( 5700 + $(node_index "$1") )); }
ow_port() { echo $(( 61600 + $(node_index "$1") )); }
pidfile() { echo "$dir/nodes/$1/node.pid"; }
node_alive() { local f; f="$(pidfile "$1")"; [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null; }
port_open_ns() { in_ns bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
all_nodes() { [[ -d "$dir/nodes" ]] && ls "$dir/nodes" 2>/dev/null | grep -E '^g[1-9][abc]$' || true; }

create_ns() {
  need_root
  if ! ns_exists; then
    ip netns add "$ns"
  fi
  in_ns ip link set lo up
  in_ns ip link set lo multicast on
  in_ns ip route replace 224.0.0.0/4 dev lo
}

render() {
  local name="$1" g port owp base data store mcast_clients mcast_net amqp_scheme=amqp ssl="" security="" nonsasl=true bridge_login=""
  g="$(node_group "$name")"; port="$(amqp_port "$name")"; owp="$(ow_port "$name")"
  base="$dir/nodes/$name"; data="$base/data"; store="$dir/groups/$g/kahadb"
  mkdir -p "$base/conf" "$data/tmp" "$store"
  mcast_clients="multicast://$maddr:$mport?group=$group&amp;joinNetworkInterface=lo&amp;networkInterface=lo"
  mcast_net="multicast://$maddr:$mport?group=$group-net&amp;joinNetworkInterface=lo&amp;networkInterface=lo"
  if [[ -n "$tls_keystore" ]]; then
    amqp_scheme=amqp+ssl
    ssl="    <sslContext>
      <sslContext keyStore=\"file:$(xml_escape "$tls_keystore")\" keyStorePassword=\"$(xml_escape "$RTS_HA_TLS_KEYSTORE_PASSWORD")\" keyStoreType=\"PKCS12\"/>
    </sslContext>"
  fi
  if [[ -n "$users_file" ]]; then
    local bridge_user bridge_password
    security="$(access_map "$users_file" RTS_HA_USERS_FILE)"
    read -r bridge_user bridge_password < <(hub_login "$users_file")
    [[ -n "$bridge_user" ]] || exit 2
    bridge_login=" userName=\"$(xml_escape "$bridge_user")\" password=\"$(xml_escape "$bridge_password")\""
    nonsasl=false
  fi
  local plugins
  plugins="$(plugins_xml "$security")"
  cat >"$base/conf/activemq.xml" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/cluster/cluster.sh for node $name (group $g): rewritten on every start. -->
<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
                           http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <!-- brokerName is the group's: master and slave are the same broker to the network. -->
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="$g" dataDirectory="$data"
          persistent="true" useJmx="false" schedulerSupport="false" advisorySupport="true">
$plugins
    <destinationPolicy>
      <policyMap>
        <policyEntries>
          <!-- A message forwarded to a broker whose consumers then left may go back (replay): no stuck messages
               when clients fail over between groups. The audit would drop the replayed copy, so it is off. -->
          <policyEntry queue=">" enableAudit="false">
            <networkBridgeFilterFactory>
              <conditionalNetworkBridgeFilterFactory replayWhenNoConsumers="true" replayDelay="500"/>
            </networkBridgeFilterFactory>
          </policyEntry>
          <!-- Systems' downlink queues may fill the store only to 80 %, so an offline system's queue does not stop
               the uplink too (README "A full broker store"). ActiveMQ takes the most specific entry alone, not merged
               with the one above: its replay and audit settings are repeated here. -->
          <policyEntry queue="rts.downlink.>" enableAudit="false" storeUsageHighWaterMark="80">
            <networkBridgeFilterFactory>
              <conditionalNetworkBridgeFilterFactory replayWhenNoConsumers="true" replayDelay="500"/>
            </networkBridgeFilterFactory>
          </policyEntry>
          <!-- What the broker dead-letters from the uplink queue goes to DLQ.rts.uplink, not the shared ActiveMQ.DLQ: the
               hub reads back the copies it calls duplicates paged in from the cursor (README "High availability"),
               and moves the rest to its rts.dlq. Replay and audit repeated, as above. -->
          <policyEntry queue="rts.uplink" enableAudit="false">
            <networkBridgeFilterFactory>
              <conditionalNetworkBridgeFilterFactory replayWhenNoConsumers="true" replayDelay="500"/>
            </networkBridgeFilterFactory>
            <deadLetterStrategy>
              <individualDeadLetterStrategy queuePrefix="DLQ." useQueueForQueueMessages="true"/>
            </deadLetterStrategy>
          </policyEntry>
        </policyEntries>
      </policyMap>
    </destinationPolicy>
    <networkConnectors>
      <!-- Groups find each other by discovery of the OpenWire connectors (group $group-net).
           bridgeTempDestinations false: the only temporary queues are the hub's replies from its own broker's
           statistics plugin, which nobody on another group reads. Bridged, ActiveMQ 6.3.1 (which refuses a consumer
           on a temporary queue from any connection but its creator's) shut the bridge down each time one came
           ("Subscribing to a temporary queue created by another connection is not permitted"), and the uplink
           waited on the other group until the bridge formed again. -->
      <!-- consumerTTL 1 (a full mesh: every group one hop from every other), messageTTL -1: a message follows its
           consumer however often it moves. networkTTL 3 left a message that had made three hops on its broker for
           good (test/integration/ha-mesh-hops.int.spec.ts; scripts/cluster/README.md). -->
      <networkConnector name="mesh" uri="$mcast_net"$bridge_login consumerTTL="1" messageTTL="-1" decreaseNetworkConsumerPriority="true"
                        suppressDuplicateQueueSubscriptions="true" bridgeTempDestinations="false"/>
    </networkConnectors>
    <persistenceAdapter>
      <!-- Shared by the group's nodes: whoever holds the file lock is master. -->
      <kahaDB directory="$store" journalMaxFileLength="32mb" lockKeepAlivePeriod="$keepalive_ms">
        <locker>
          <shared-file-locker lockAcquireSleepInterval="$acquire_ms"/>
        </locker>
      </kahaDB>
    </persistenceAdapter>
$ssl
    <!-- A send that finds no space is refused at once, never held on the connection's own thread. -->
    <systemUsage>
      <systemUsage sendFailIfNoSpace="true">
        <memoryUsage><memoryUsage percentOfJvmHeap="70"/></memoryUsage>
        <storeUsage><storeUsage limit="2 gb"/></storeUsage>
        <tempUsage><tempUsage limit="512 mb"/></tempUsage>
      </systemUsage>
    </systemUsage>
    <transportConnectors>
      <!-- publishedHostStrategy IPADDRESS: announce the address, not a host name the clients may resolve
           differently (ActiveMQ's default announces amqp://<hostname>:port, here "localhost"). -->
      <transportConnector name="openwire" uri="tcp://127.0.0.1:$owp" discoveryUri="$mcast_net">
        <publishedAddressPolicy><publishedAddressPolicy publishedHostStrategy="IPADDRESS"/></publishedAddressPolicy>
      </transportConnector>
      <transportConnector name="amqp"
        uri="$amqp_scheme://127.0.0.1:$port?maximumConnections=1000&amp;wireFormat.maxFrameSize=1048576&amp;wireFormat.allowNonSaslConnections=$nonsasl"
        discoveryUri="$mcast_clients">
        <publishedAddressPolicy><publishedAddressPolicy publishedHostStrategy="IPADDRESS"/></publishedAddressPolicy>
      </transportConnector>
    </transportConnectors>
    <shutdownHooks>
      <bean xmlns="http://www.springframework.org/schema/beans" class="org.apache.activemq.hooks.SpringContextHook"/>
    </shutdownHooks>
  </broker>
</beans>
XML
  [[ -z "$ssl$security" ]] || chmod 600 "$base/conf/activemq.xml" # it holds passwords
  cat >"$base/conf/log4j2.properties" <<PROPS
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

activemq_home() { echo "${RTS_ACTIVEMQ_HOME:-$("$repo/scripts/activemq/provision.sh")}"; }

start_node() {
  local name="$1" home base
  if node_alive "$name"; then echo "node $name: already running (pid $(cat "$(pidfile "$name")"))"; return 0; fi
  home="${AMQ_HOME_CACHED:-$(activemq_home)}"
  render "$name"
  base="$dir/nodes/$name"
  local java_bin="${JAVA_HOME:+$JAVA_HOME/bin/}java"
  local launch
  broker_launch "$home" "$java_bin"
  # `ip netns exec` execs the JVM, so $! is the JVM's pid.
  nohup ip netns exec "$ns" "$java_bin" \
    -Xms48m "-Xmx$heap" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -XX:-UsePerfData \
    -Djava.net.preferIPv4Stack=true -Dlog4j2.disable.jmx=true -Djava.awt.headless=true \
    "-Djava.io.tmpdir=$base/data/tmp" \
    --add-reads=java.xml=java.logging \
    --add-opens java.base/java.security=ALL-UNNAMED --add-opens java.base/java.net=ALL-UNNAMED \
    --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/java.util=ALL-UNNAMED \
    --add-opens java.naming/javax.naming.spi=ALL-UNNAMED --add-opens java.base/java.util.concurrent=ALL-UNNAMED \
    --add-opens java.base/java.util.concurrent.atomic=ALL-UNNAMED \
    "-Dactivemq.home=$home" "-Dactivemq.base=$base" "-Dactivemq.conf=$base/conf" "-Dactivemq.data=$base/data" \
    "-Dlog4j2.configurationFile=$base/conf/log4j2.properties" \
    "${launch[@]}" start "xbean:file:$base/conf/activemq.xml" \
    >>"$base/node.out" 2>&1 </dev/null &
  echo $! >"$(pidfile "$name")"
  echo "node $name: started pid $! amqp 127.0.0.1:$(amqp_port "$name") (namespace $ns)"
}

signal_node() {
  local name="$1" sig="$2" grace="${3:-15}" pid i=0
  node_alive "$name" || { rm -f "$(pidfile "$name")"; return 0; }
  pid="$(cat "$(pidfile "$name")")"
  kill "-$sig" "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if (( i >= grace * 10 )); then kill -KILL "$pid" 2>/dev/null || true; fi
    if (( i >= grace * 10 + 50 )); then echo "cluster: pid $pid of $name does not die" >&2; return 1; fi
    sleep 0.1; i=$((i + 1))
  done
  rm -f "$(pidfile "$name")"
}

master_of() {
  local g="$1" n
  for n in $(all_nodes); do
    [[ "$(node_group "$n")" == "$g" ]] || continue
    if node_alive "$n" && port_open_ns "$(amqp_port "$n")"; then echo "$n"; return 0; fi
  done
  return 1
}

wait_master() {
  local g="$1" timeout="$2" t0 m
  t0=$SECONDS
  until m="$(master_of "$g")"; do
    if (( SECONDS - t0 > timeout )); then echo "cluster: no master in $g after ${timeout}s" >&2; return 1; fi
    sleep 0.05
  done
  echo "$m"
}

# A node that has started and waits for its group's lock (ActiveMQ's SharedFileLocker says so in its log).
wait_slave() {
  local n="$1" timeout="$2" t0=$SECONDS
  until grep -q 'is locked by another server' "$dir/nodes/$n/node.out" 2>/dev/null; do
    node_alive "$n" || { echo "cluster: node $n died while starting" >&2; return 1; }
    if (( SECONDS - t0 > timeout )); then echo "cluster: $n not waiting for its group's lock after ${timeout}s" >&2; return 1; fi
    sleep 0.05
  done
}

up() {
  create_ns
  mkdir -p "$dir/nodes" "$dir/groups"
  AMQ_HOME_CACHED="$(activemq_home)"; export AMQ_HOME_CACHED
  local t0 n g seen=" " firsts=() rest=()
  t0=$(now_ms)
  # The first node named of each group starts alone and takes the group's lock before the others start, so it is
  # the master: started together, on a loaded machine the second JVM sometimes won the lock, and the tests (and an
  # operator reading `status`) expect g1a to be g1's master after `up`.
  for n in ${RTS_HA_NODES:-g1a g1b g2a g2b}; do
    g="$(node_group "$n")"
    if [[ "$seen" == *" $g "* ]]; then rest+=("$n"); else firsts+=("$n"); seen+="$g "; fi
  done
  for n in "${firsts[@]}"; do mkdir -p "$dir/nodes/$n"; start_node "$n"; sleep 0.3; done
  for g in $(for n in "${firsts[@]}"; do node_group "$n"; done); do
    n="$(wait_master "$g" "$start_timeout")" || { status >&2; exit 1; }
    echo "group $g: master $n"
  done
  for n in "${rest[@]}"; do mkdir -p "$dir/nodes/$n"; start_node "$n"; sleep 0.3; done
  # And they wait for the lock (a kill of the master right after `up` is taken over as before, not by a JVM still booting).
  for n in "${rest[@]}"; do wait_slave "$n" "$start_timeout" || { status >&2; exit 1; }; done
  echo "cluster: up in $(( $(now_ms) - t0 )) ms (namespace $ns, state $dir, discovery $maddr:$mport group $group${tls_keystore:+, AMQP over TLS only}${users_file:+, broker accounts})"
}

down() {
  local n
  for n in $(all_nodes); do signal_node "$n" TERM 10 || true; done
  if ns_exists; then
    # Anything else still inside (a client a test left behind): only processes in this namespace.
    local pids; pids="$(ip netns pids "$ns" 2>/dev/null || true)"
    [[ -n "$pids" ]] && kill -KILL $pids 2>/dev/null || true
    ip netns del "$ns" || true
  fi
  [[ "${RTS_HA_KEEP_DIR:-0}" == 1 ]] || rm -rf "$dir"
  echo "cluster: down"
}

status() {
  local n role pid
  ns_exists || { echo "cluster: namespace $ns does not exist"; return 3; }
  for n in $(all_nodes); do
    if node_alive "$n"; then
      pid="$(cat "$(pidfile "$n")")"
      if port_open_ns "$(amqp_port "$n")"; then role=master; else role=slave; fi
    else pid=-; role=down; fi
    echo "$n pid=$pid role=$role amqp=127.0.0.1:$(amqp_port "$n")"
  done
}

kill_master() {
  local g="$1" old new t0 t1
  [[ "$g" =~ ^g[1-9]$ ]] || { echo "usage: cluster.sh kill-master g1|g2|..." >&2; exit 2; }
  old="$(master_of "$g")" || { echo "cluster: $g has no master now" >&2; exit 1; }
  t0=$(now_ms)
  kill -KILL "$(cat "$(pidfile "$old")")"
  while node_alive "$old"; do sleep 0.02; done
  rm -f "$(pidfile "$old")"
  echo "killed $old at=$t0"
  new="$(wait_master "$g" "$start_timeout")" || exit 1
  t1=$(now_ms)
  # The killed node comes back as the group's slave (it blocks on the lock).
  [[ "${RTS_HA_RESTART_KILLED:-1}" == 1 ]] && start_node "$old" >/dev/null
  echo "takeover $g $old->$new ms=$(( t1 - t0 ))"
}

cmd="${1:-}"; shift || true
case "$cmd" in
  up) need_root; up ;;
  down) need_root; down ;;
  status) status ;;
  kill-master) need_root; kill_master "${1:?group}" ;;
  start-node) need_root; create_ns; mkdir -p "$dir/nodes/${1:?name}"; node_index "$1" >/dev/null; start_node "$1" ;;
  stop-node) need_root; signal_node "${1:?name}" TERM 15; echo "node $1: stopped" ;;
  kill-node) need_root; signal_node "${1:?name}" KILL 0; echo "node $1: killed" ;;
  master) master_of "${1:?group}" ;;
  exec) need_root; in_ns "$@" ;;
  *) echo "usage: cluster.sh up|down|status|kill-master GROUP|start-node NAME|stop-node NAME|kill-node NAME|master GROUP|exec CMD..." >&2; exit 2 ;;
esac
