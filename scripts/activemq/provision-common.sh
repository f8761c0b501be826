# Sourced by provision.sh (the 5.x tarball) and provision-jars.sh (the 6.x jars): the step both take before they
# fetch anything. With $marker, $stamp and $home set: when the home is in place under the same pins, print it and exit
# 0; otherwise check for mvn and java, take the provisioning lock (fd 9, held until the script exits) and look once
# more, since whoever held the lock may have provisioned it meanwhile.
provisioned_or_lock() {
  local cache="$1"
  if [[ -f "$marker" && "$(cat "$marker")" == "$stamp" ]]; then
    echo "$home"
    exit 0
  fi
  command -v mvn >/dev/null || { echo "provision: mvn not found on PATH" >&2; exit 1; }
  command -v java >/dev/null || { echo "provision: java not found on PATH" >&2; exit 1; }
  mkdir -p "$cache"
  # Serialise concurrent provisioning (parallel jest workers, CI jobs) on one lock.
  exec 9>"$cache/.provision.lock"
  if command -v flock >/dev/null; then flock 9; fi
  if [[ -f "$marker" && "$(cat "$marker")" == "$stamp" ]]; then
    echo "$home"
    exit 0
  fi
}
