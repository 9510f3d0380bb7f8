#!/usr/bin/env bash
# A throwaway PostgreSQL server for the test suite: a fresh cluster under a temp directory,
# on 127.0.0.1, with role and database `cartwright`. Leaves its URL in
# CARTWRIGHT_TEST_POSTGRES_URL:
#   eval "$(.ci/postgres.sh)"      # prints `export CARTWRIGHT_TEST_POSTGRES_URL=...`
#   source .ci/postgres.sh         # the same, into the current shell
#   .ci/postgres.sh stop           # stops the server and removes its directory
# With `tls` (and `stop tls`), a second, separate server with ssl=on: a CA, a server certificate
# for 127.0.0.1 and localhost, and a client certificate for the role `cartwright_cert` (`cert`
# authentication), made with the openssl program in its directory. It leaves
# CARTWRIGHT_TEST_POSTGRES_TLS_URL (no sslmode in it) and CARTWRIGHT_TEST_POSTGRES_TLS_CERTS
# (the directory of ca.pem, client.pem and client.key).
# A second call while the server runs reuses it. Installs Debian's `postgresql` when the
# machine has no initdb. fsync and synchronous_commit stay on: the tests check durability.
# Settings: CARTWRIGHT_PG_DIR (default ${TMPDIR:-/tmp}/cartwright-ci-postgres) and
# CARTWRIGHT_PG_PORT (the first port tried, default 25432; the TLS server's state directory
# is the same with -tls after it, its first port 10 higher). The default lies below Linux's
# ephemeral ports (32768-60999): a port in that range can be taken, between the check that
# it is free and the server's bind, as the local end of any outgoing connection (the test
# suite makes thousands); a bind that fails anyway moves on to the next free port.

# Sourced: run as a child (so its `set -e` and exits stay its own) and take its exports.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
  __cartwright_pg_env=$(bash "${BASH_SOURCE[0]}" "$@") || return 1
  eval "$__cartwright_pg_env"
  unset __cartwright_pg_env
  return 0
fi

set -euo pipefail

tls=false
if [ "${1:-}" = tls ] || [ "${2:-}" = tls ]; then tls=true; fi
state="${CARTWRIGHT_PG_DIR:-${TMPDIR:-/tmp}/cartwright-ci-postgres}"
first_port="${CARTWRIGHT_PG_PORT:-25432}"
if $tls; then
  state="$state-tls"
  first_port=$((first_port + 10))
fi
data="$state/data"

log() { echo "postgres.sh: $*" >&2; }

# PostgreSQL refuses to run as root: as root, everything runs as the `postgres` user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

# The server binaries: on PATH, else Debian's versioned directory (not on PATH), else installed.
find_bindir() {
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null && command -v postgres >/dev/null; then
    dirname "$(readlink -f "$(command -v initdb)")"
    return
  fi
  local dir
  dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
    echo "$dir"
    return
  fi
  log "no initdb on this machine: installing Debian's postgresql"
  # Without its default cluster: the package would otherwise start one on 5432 that outlives CI.
  if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
  fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Options::=--force-confold postgresql >&2
  dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d | sort -V | tail -n 1)
  [ -x "$dir/initdb" ] || { log "postgresql installed but no initdb found"; exit 1; }
  echo "$dir"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

stop() {
  if [ -f "$data/PG_VERSION" ]; then
    local bindir
    bindir=$(find_bindir)
    as_pg "$bindir/pg_ctl" stop -D "$data" -m fast -s >/dev/null 2>&1 || true
  fi
  rm -rf "$state"
  log "stopped; $state removed"
}

running() {
  [ -f "$state/url" ] && [ -f "$data/postmaster.pid" ] && as_pg "$bindir/pg_ctl" status -D "$data" >/dev/null 2>&1
}

start() {
  stop 2>/dev/null # a leftover of an earlier run that died: never reused half-made
  mkdir -p "$state"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent postgres
    chown postgres: "$state"
  fi
  chmod 700 "$state"

  local port="$first_port" tries=0
  while ! port_free "$port"; do
    tries=$((tries + 1))
    [ "$tries" -lt 50 ] || { log "no free port from $first_port on"; exit 1; }
    port=$((port + 1))
  done

  local password
  password=$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')
  as_pg "$bindir/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --locale=C >"$state/initdb.log" 2>&1 ||
    { cat "$state/initdb.log" >&2; exit 1; }
  local ssl=""
  if $tls; then
    make_certificates "$state/certs"
    ssl="-c ssl=on -c ssl_cert_file=$state/certs/server.pem -c ssl_key_file=$state/certs/server.key -c ssl_ca_file=$state/certs/ca.pem"
    # Before initdb's `host` lines, which take a password with or without TLS.
    as_pg sed -i '1i hostssl all cartwright_cert 127.0.0.1/32 cert' "$data/pg_hba.conf"
  fi
  # The socket lives in the cluster's own directory: /var/run/postgresql may not exist.
  # fsync and synchronous_commit are the defaults, said again so no conf file turns them off.
  local binds=0
  until as_pg "$bindir/pg_ctl" start -D "$data" -w -t 60 -l "$state/server.log" \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$state -c max_connections=200 -c fsync=on -c synchronous_commit=on $ssl" \
    >/dev/null; do
    binds=$((binds + 1))
    if [ "$binds" -ge 10 ] || ! grep -q "Address already in use" "$state/server.log"; then
      cat "$state/server.log" >&2
      exit 1
    fi
    log "port $port was taken before the server bound it; trying the next free one"
    port=$((port + 1))
    while ! port_free "$port"; do port=$((port + 1)); done
  done

  as_pg "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$state" -p "$port" -U postgres -d postgres \
    -c "CREATE ROLE cartwright LOGIN PASSWORD '$password'" \
    -c "CREATE DATABASE cartwright OWNER cartwright" \
    -c "CREATE ROLE cartwright_cert LOGIN" \
    -c "GRANT CREATE ON DATABASE cartwright TO cartwright_cert" \
    -c "GRANT pg_read_all_stats TO cartwright" >&2  # pg_stat_ssl of cartwright_cert's sessions too
  echo "postgres://cartwright:$password@127.0.0.1:$port/cartwright" >"$state/url"
  log "started PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (cluster in $data)"
}

# A CA, the server's certificate (127.0.0.1 and localhost) and a client certificate for
# the role cartwright_cert, in `dir` (the CA's key is deleted once they are issued).
make_certificates() {
  local dir=$1 serial
  if ! command -v openssl >/dev/null; then
    log "no openssl program: installing Debian's openssl"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >&2
  fi
  mkdir -p "$dir"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -days 3 -subj "/CN=Cartwright test CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  # name, subjectAltName or empty, extendedKeyUsage
  issue() {
    openssl req -new "${ec[@]}" -subj "/CN=$1" -keyout "$dir/$4.key" -out "$dir/$4.csr" 2>/dev/null
    serial=$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')
    printf '%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n' "$2" "$3" >"$dir/$4.ext"
    openssl x509 -req -in "$dir/$4.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -set_serial "0x$serial" -days 3 \
      -extfile "$dir/$4.ext" -out "$dir/$4.pem" 2>/dev/null
    rm "$dir/$4.csr" "$dir/$4.ext"
  }
  issue localhost "subjectAltName=DNS:localhost,IP:127.0.0.1" serverAuth server
  issue cartwright_cert "" clientAuth client
  rm "$dir/ca.key"
  chmod 600 "$dir/server.key"
  [ "$(id -u)" != 0 ] || chown -R postgres: "$dir"
}

case "${1:-start}" in
  stop)
    stop
    ;;
  start | tls)
    bindir=$(find_bindir)
    if running; then
      log "reusing the server already running in $state"
    else
      start
    fi
    if $tls; then
      echo "export CARTWRIGHT_TEST_POSTGRES_TLS_URL='$(cat "$state/url")'"
      echo "export CARTWRIGHT_TEST_POSTGRES_TLS_CERTS='$state/certs'"
    else
      echo "export CARTWRIGHT_TEST_POSTGRES_URL='$(cat "$state/url")'"
    fi
    ;;
  *)
    log "usage: $0 [start|stop|tls|stop tls]"
    exit 2
    ;;
esac
