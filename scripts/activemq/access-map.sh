# Sourced by broker.sh and scripts/cluster/cluster.sh: the broker accounts of a users file (one per line,
# `name password [hub]`, # comments; see broker.sh's header for the access map), rendered as activemq.xml pieces.
# Errors go to stderr prefixed with $script_name (default "broker") and exit 2.

xml_escape() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g' <<<"$1"; }

# The broker's <plugins> (argument 1: what access_map rendered, or nothing): the statistics plugin, which answers the
# hub's reading of the dead letter queue's depth (rts_dead_letters, README "The depth of the dead letter queue"),
# unless RTS_BROKER_STATISTICS=off. Listed first, so it is the innermost: a request passes the access map before it
# (only a hub account may send to ActiveMQ.Statistics.Destination.*, as to any queue not named in the map).
plugins_xml() {
  local statistics=""
  case "${RTS_BROKER_STATISTICS:-on}" in
    on) statistics="      <statisticsBrokerPlugin/>"$'\n' ;;
    off) ;;
    *) echo "${script_name:-broker}: RTS_BROKER_STATISTICS is on or off" >&2; exit 2 ;;
  esac
  [[ -n "$statistics$1" ]] || return 0
  printf '    <plugins>\n%s%s    </plugins>\n' "$statistics" "$1"
}

# The authentication and authorization plugins of a users file (argument 1; argument 2 names its setting in errors):
# who may log in, and the RTS access map (see broker.sh's header). The elements only: plugins_xml wraps them.
access_map() {
  local file="$1" setting="${2:-RTS_BROKER_USERS_FILE}" name password role users="" entries="" line=0
  [[ -r "$file" ]] || { echo "${script_name:-broker}: $setting $file cannot be read" >&2; exit 2; }
  while read -r name password role rest || [[ -n "$name" ]]; do
    line=$((line + 1))
    [[ -z "$name" || "$name" == \#* ]] && continue
    [[ "$name" =~ ^[a-z0-9][a-z0-9-]{0,62}$ ]] || { echo "${script_name:-broker}: $file line $line: a user name is [a-z0-9-] (a systemId)" >&2; exit 2; }
    [[ -n "$password" && -z "$rest" && ( -z "$role" || "$role" == hub ) ]] || { echo "${script_name:-broker}: $file line $line: expected 'name password [hub]'" >&2; exit 2; }
    if [[ "$role" == hub ]]; then
      users+="          <authenticationUser username=\"$name\" password=\"$(xml_escape "$password")\" groups=\"rts-hubs,rts-users\"/>"$'\n'
    else
      users+="          <authenticationUser username=\"$name\" password=\"$(xml_escape "$password")\" groups=\"rts-systems,rts-system-$name,rts-users\"/>"$'\n'
      entries+="              <authorizationEntry queue=\"rts.downlink.$name\" read=\"rts-hubs,rts-system-$name\" write=\"rts-hubs\" admin=\"rts-hubs,rts-system-$name\"/>"$'\n'
    fi
  done <"$file"
  [[ -n "$users" ]] || { echo "${script_name:-broker}: $file names no user" >&2; exit 2; }
  cat <<XML
      <simpleAuthenticationPlugin anonymousAccessAllowed="false">
        <users>
$users        </users>
      </simpleAuthenticationPlugin>
      <authorizationPlugin>
        <map>
          <authorizationMap>
            <authorizationEntries>
              <!-- Hubs: everything. Systems: send uplink and dead letters; consume their own downlink only; read no topic. -->
              <authorizationEntry queue=">" read="rts-hubs" write="rts-hubs" admin="rts-hubs"/>
              <authorizationEntry queue="rts.uplink" read="rts-hubs" write="rts-hubs,rts-systems" admin="rts-hubs,rts-systems"/>
              <authorizationEntry queue="rts.dlq" read="rts-hubs" write="rts-hubs,rts-systems" admin="rts-hubs,rts-systems"/>
$entries              <authorizationEntry topic=">" read="rts-hubs" write="rts-hubs" admin="rts-hubs"/>
              <!-- Advisories: the broker raises them for a system's own connections, consumers and producers in that
                   system's name, so every account may create and write them; only hubs (and the network bridge, a hub
                   login) may read them. Read would let a system watch other systems' links come and go, list every
                   queue (the downlink queues name the systemIds), and receive the expired and dead letter advisories
                   of other systems' messages (their properties: consultationId, systemId). No AMQP client needs to. -->
              <authorizationEntry topic="ActiveMQ.Advisory.>" read="rts-hubs" write="rts-users" admin="rts-users"/>
            </authorizationEntries>
          </authorizationMap>
        </map>
      </authorizationPlugin>
XML
}

# "name password" of the first `hub` user of a users file: the login of the network bridge between brokers, which
# reads and writes every queue (and the advisory topics), as only a hub account may.
hub_login() {
  local file="$1" name password role rest
  while read -r name password role rest || [[ -n "$name" ]]; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    if [[ "$role" == hub ]]; then echo "$name $password"; return 0; fi
  done <"$file"
  echo "${script_name:-broker}: $file names no hub user (the network bridge between brokers logs in as one)" >&2
  exit 2
}

# The major version of the Java that the command $1 runs: from the JDK's `release` file (cheap: no JVM started),
# else asked of it. Empty when it cannot tell.
java_major() {
  local bin release version=""
  bin="$(readlink -f "$(command -v "$1")" 2>/dev/null)" || return 0
  release="$(dirname "$(dirname "$bin")")/release"
  [[ -f "$release" ]] && version="$(sed -n 's/^JAVA_VERSION="\([^"]*\)".*/\1/p' "$release")"
  [[ -n "$version" ]] || version="$("$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  [[ "$version" == 1.* ]] && version="${version#1.}"
  echo "${version%%[!0-9]*}"
}

# The JVM arguments that start the broker of ActiveMQ home $1 with the java command $2, into the array `launch`: the
# distribution's bin/activemq.jar (a 5.x home), or the console's Main class with lib/* as the classpath (a 6.x home
# of jars, made by provision-jars.sh). Either is followed by `start xbean:file:<activemq.xml>`. Stops, saying so,
# when that Java is older than the broker needs (6.x: 17; 5.18: 11): the JVM's own UnsupportedClassVersionError
# names neither the broker nor what to do.
broker_launch() {
  local need major
  if [[ -f "$1/bin/activemq.jar" ]]; then
    launch=(-jar "$1/bin/activemq.jar")
    need=11
  elif [[ -d "$1/lib" ]]; then
    launch=(-cp "$1/lib/*" org.apache.activemq.console.Main)
    need=17
  else
    echo "${script_name:-broker}: $1 is no ActiveMQ home (neither bin/activemq.jar nor lib/)" >&2
    exit 2
  fi
  if ! command -v "$2" >/dev/null; then
    echo "${script_name:-broker}: the broker needs Java $need or later, and there is no $2 (install a JDK, or set JAVA_HOME to one)" >&2
    exit 2
  fi
  major="$(java_major "$2")"
  if [[ -n "$major" ]] && (( major < need )); then
    local hint=""
    (( need == 17 )) && hint=" (or RTS_ACTIVEMQ_VERSION=5.18.3, which runs on Java 11 but is out of upstream support)"
    echo "${script_name:-broker}: the ActiveMQ in $1 needs Java $need or later, and $2 is Java $major: set JAVA_HOME to a JDK $need or later$hint" >&2
    exit 2
  fi
}
