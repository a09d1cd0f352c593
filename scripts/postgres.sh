#!/usr/bin/env bash
# A local PostgreSQL 16 server with pgvector for tuna's Postgres tests, listening only on 127.0.0.1.
# The binaries come from the PyPI wheel `pgserver` (PostgreSQL + pgvector), installed outside the
# repository under $TUNA_PG_HOME (default ~/.cache/tuna/postgres) with the cluster in $TUNA_PG_HOME/data.
#   bash scripts/postgres.sh start   # install/init if needed, start, print the URL (only stdout line)
#   bash scripts/postgres.sh stop    # fast shutdown; succeeds when nothing is running
#   bash scripts/postgres.sh url     # print postgres://postgres@127.0.0.1:$TUNA_PG_PORT/tuna_test
# Run as root, the server runs as the system user `tunapg` (created if missing): postgres refuses root.
set -euo pipefail
umask 022

PGSERVER_VERSION=0.1.4 # ships PostgreSQL 16.2 and pgvector 0.6.2
PG_HOME="${TUNA_PG_HOME:-$HOME/.cache/tuna/postgres}"
PORT="${TUNA_PG_PORT:-55432}"
DB=tuna_test
SYS_USER=tunapg

log() { echo "postgres.sh: $*" >&2; }
die() { log "$*"; exit 1; }
url() { echo "postgres://postgres@127.0.0.1:$PORT/$DB"; }

[ "$(id -u)" = 0 ] && as_root=1 || as_root=0

# Runs a command as the user that owns the cluster (ourselves, or $SYS_USER when root).
as_pg() {
  if [ "$as_root" = 0 ]; then
    "$@"
  elif command -v runuser >/dev/null; then
    runuser -u "$SYS_USER" -- "$@"
  else
    su -s /bin/sh "$SYS_USER" -c 'exec "$0" "$@"' -- "$@"
  fi
}

find_bin() {
  BIN="$PY_DIR/pgserver/pginstall/bin"
  if [ ! -x "$BIN/pg_ctl" ]; then
    local found
    found="$(find "$PY_DIR" -path '*/pginstall/bin/pg_ctl' -print -quit 2>/dev/null || true)"
    [ -n "$found" ] || return 1
    BIN="$(dirname "$found")"
  fi
  [ -x "$BIN/initdb" ] && [ -x "$BIN/postgres" ] && [ -x "$BIN/psql" ]
}

install_pgserver() {
  find_bin && return
  local py tmp="$PY_DIR.partial"
  py="$(command -v python3 || command -v python)" || die "python3 is needed to install pgserver"
  rm -rf "$tmp"
  log "installing pgserver==$PGSERVER_VERSION into $PY_DIR"
  # The wheels are tagged per CPython version (3.9-3.12); the binaries inside do not depend on it,
  # so on a newer Python take the cp312 wheel without its (pure-Python, unneeded) dependencies.
  if ! PIP_USER=0 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$py" -m pip install --quiet --target "$tmp" "pgserver==$PGSERVER_VERSION" >&2; then
    log "retrying with the cp312 wheel"
    rm -rf "$tmp"
    PIP_USER=0 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
      "$py" -m pip install --quiet --target "$tmp" --no-deps --only-binary=:all: \
      --python-version 3.12 "pgserver==$PGSERVER_VERSION" >&2
  fi
  rm -rf "$PY_DIR"
  mv "$tmp" "$PY_DIR"
  find_bin || die "no PostgreSQL binaries (pginstall/bin) found in $PY_DIR"
}

# Root only: a system user for the server, able to reach the binaries and the cluster.
ensure_sys_user() {
  if ! id -u "$SYS_USER" >/dev/null 2>&1; then
    log "creating system user $SYS_USER"
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$SYS_USER"
  fi
  # $PG_HOME usually sits under /root (mode 700): grant traverse-only (o+x) on the ancestors
  # the server user cannot pass through, nothing more.
  local dir="" part
  local -a parts
  IFS=/ read -ra parts <<<"${PG_HOME#/}"
  for part in "${parts[@]}"; do
    dir="$dir/$part"
    if ! as_pg test -x "$dir" 2>/dev/null; then
      log "granting traverse permission (chmod o+x) on $dir for $SYS_USER"
      chmod o+x "$dir"
    fi
  done
}

is_running() {
  [ -f "$DATA/PG_VERSION" ] && as_pg "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

cmd_start() {
  install_pgserver
  if [ "$as_root" = 1 ]; then ensure_sys_user; fi
  if is_running; then
    url
    return
  fi
  local sock="$RUN_DIR/.s.PGSQL.$PORT"
  [ "${#sock}" -lt 100 ] || die "socket path too long for unix sockets: $sock (set TUNA_PG_HOME shorter)"
  case "$PG_HOME" in *"'"*) die "TUNA_PG_HOME must not contain a single quote" ;; esac

  mkdir -p "$DATA" "$RUN_DIR"
  if [ "$as_root" = 1 ]; then chown "$SYS_USER:" "$DATA" "$RUN_DIR"; fi
  chmod 700 "$DATA"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    log "initdb $DATA"
    as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C >&2
  fi

  log "starting PostgreSQL on 127.0.0.1:$PORT (log: $RUN_DIR/postgres.log)"
  if ! as_pg "$BIN/pg_ctl" start -D "$DATA" -l "$RUN_DIR/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k '$RUN_DIR'" >&2; then
    tail -n 20 "$RUN_DIR/postgres.log" >&2 || true
    die "PostgreSQL did not start"
  fi
  local i
  for i in $(seq 1 60); do
    "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres && break
    [ "$i" = 60 ] && die "PostgreSQL does not accept connections on 127.0.0.1:$PORT"
    sleep 0.5
  done

  local psql=("$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres)
  if [ "$("${psql[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
    "${psql[@]}" -d postgres -c "CREATE DATABASE $DB" >&2
  fi
  PGOPTIONS="-c client_min_messages=warning" \
    "${psql[@]}" -d "$DB" -c "CREATE EXTENSION IF NOT EXISTS vector" >&2
  url
}

cmd_stop() {
  find_bin || return 0
  [ -f "$DATA/PG_VERSION" ] || return 0
  if [ "$as_root" = 1 ] && ! id -u "$SYS_USER" >/dev/null 2>&1; then return 0; fi
  if is_running; then
    as_pg "$BIN/pg_ctl" stop -D "$DATA" -m fast -w >&2
  fi
}

case "${1:-}" in
  start) mkdir -p "$PG_HOME" ;;
  stop) [ -d "$PG_HOME" ] || exit 0 ;;
  url) url; exit 0 ;;
  *) die "usage: $0 start|stop|url" ;;
esac
# Absolute paths, and a working directory the server user can read.
PG_HOME="$(cd "$PG_HOME" && pwd)"
PY_DIR="$PG_HOME/py"
DATA="$PG_HOME/data"
RUN_DIR="$PG_HOME/run" # unix socket and server log
cd "$PG_HOME"
"cmd_$1"
