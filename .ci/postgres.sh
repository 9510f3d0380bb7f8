#!/usr/bin/env bash
# A throwaway PostgreSQL server for the test suite: a fresh cluster under a temp directory,
# on 127.0.0.1, with role and database `cartwright`. Leaves its URL in
# CARTWRIGHT_TEST_POSTGRES_URL:
#   eval "$(.ci/postgres.sh)"      # prints `export CARTWRIGHT_TEST_POSTGRES_URL=...`
#   source .ci/postgres.sh         # the same, into the current shell
#   .ci/postgres.sh stop           # stops the server and removes its directory
# A second call while the server runs reuses it. Installs Debian's `postgresql` when the
# machine has no initdb. fsync and synchronous_commit stay on: the tests check durability.
# Settings: CARTWRIGHT_PG_DIR (default ${TMPDIR:-/tmp}/cartwright-ci-postgres) and
# CARTWRIGHT_PG_PORT (the first port tried, default 55432).

# Sourced: run as a child (so its `set -e` and exits stay its own) and take its exports.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
  __cartwright_pg_env=$(bash "${BASH_SOURCE[0]}" "$@") || return 1
  eval "$__cartwright_pg_env"
  unset __cartwright_pg_env
  return 0
fi

set -euo pipefail

state="${CARTWRIGHT_PG_DIR:-${TMPDIR:-/tmp}/cartwright-ci-postgres}"
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

  local port="${CARTWRIGHT_PG_PORT:-55432}" tries=0
  while ! port_free "$port"; do
    tries=$((tries + 1))
    [ "$tries" -lt 50 ] || { log "no free port from ${CARTWRIGHT_PG_PORT:-55432} on"; exit 1; }
    port=$((port + 1))
  done

  local password
  password=$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')
  as_pg "$bindir/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --locale=C >"$state/initdb.log" 2>&1 ||
    { cat "$state/initdb.log" >&2; exit 1; }
  # The socket lives in the cluster's own directory: /var/run/postgresql may not exist.
  # fsync and synchronous_commit are the defaults, said again so no conf file turns them off.
  as_pg "$bindir/pg_ctl" start -D "$data" -w -t 60 -l "$state/server.log" \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$state -c max_connections=200 -c fsync=on -c synchronous_commit=on" \
    >/dev/null || { cat "$state/server.log" >&2; exit 1; }

  as_pg "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$state" -p "$port" -U postgres -d postgres \
    -c "CREATE ROLE cartwright LOGIN PASSWORD '$password'" \
    -c "CREATE DATABASE cartwright OWNER cartwright" >&2
  echo "postgres://cartwright:$password@127.0.0.1:$port/cartwright" >"$state/url"
  log "started PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (cluster in $data)"
}

case "${1:-start}" in
  stop)
    stop
    ;;
  start)
    bindir=$(find_bindir)
    if running; then
      log "reusing the server already running in $state"
    else
      start
    fi
    echo "export CARTWRIGHT_TEST_POSTGRES_URL='$(cat "$state/url")'"
    ;;
  *)
    log "usage: $0 [start|stop]"
    exit 2
    ;;
esac
