#!/usr/bin/env bash
# A Dagster cluster on this machine, with one command (docs/deploy.md):
#
#   deploy/local-cluster.sh up        install what is missing, start everything
#   deploy/local-cluster.sh status    what runs, where
#   deploy/local-cluster.sh upload CALLS CANDLES   put a calls file and a candle store in the bucket
#   deploy/local-cluster.sh env       the environment of a cluster client (source it)
#   deploy/local-cluster.sh down      stop everything (data kept); `purge` also deletes the state
#
# Services (127.0.0.1 only): PostgreSQL (Dagster's storage), Redis (Celery's
# broker), moto's S3 server (the bucket). Processes: the Dagster webserver,
# the daemon and QUANTBOT_WORKERS (2) Celery workers. Each process has its own
# DAGSTER_HOME (a copy of deploy/dagster.yaml) and its own working directory
# under the state directory; they share nothing but the three services.
#
# Settings (environment): QUANTBOT_CLUSTER_DIR (state, default .cluster/ in the
# checkout), QUANTBOT_PG_PORT (55432), QUANTBOT_REDIS_PORT (56379),
# QUANTBOT_S3_PORT (55900), QUANTBOT_UI_PORT (53000), QUANTBOT_WORKERS (2),
# QUANTBOT_BUCKET (quantbot), QUANTBOT_PYTHON (the checkout's .venv python).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
STATE=${QUANTBOT_CLUSTER_DIR:-$REPO/.cluster}
PY=${QUANTBOT_PYTHON:-$REPO/.venv/bin/python}
BIN=$(dirname "$PY")
say() { printf '%s\n' "$*" >&2; }
die() { say "local-cluster: $*"; exit 1; }

# A cluster keeps the ports of its first `up` (in cluster.env), so a later `up`,
# `down` or `status` from another shell finds the same services.
kept() {
  if [ -f "$STATE/cluster.env" ]; then sed -n "s/^export $1=//p" "$STATE/cluster.env" | tail -1; fi
}
port() {
  local want=${!1:-} was
  was=$(kept "$1")
  if [ -n "$was" ] && [ -n "$want" ] && [ "$was" != "$want" ]; then
    die "$1=$want, but this cluster was set up with $was ($STATE/cluster.env): unset it, or run purge first"
  fi
  echo "${was:-${want:-$2}}"
}
PG_PORT=$(port QUANTBOT_PG_PORT 55432)
REDIS_PORT=$(port QUANTBOT_REDIS_PORT 56379)
S3_PORT=$(port QUANTBOT_S3_PORT 55900)
UI_PORT=$(port QUANTBOT_UI_PORT 53000)
WORKERS=${QUANTBOT_WORKERS:-2}
BUCKET=${QUANTBOT_BUCKET:-quantbot}
HOST=127.0.0.1

pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  done
  return 1
}

as_pg() {
  # PostgreSQL refuses to run as root: as root, run it as the `postgres` user.
  if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install_missing() {
  local pkgs=()
  pg_bin >/dev/null || pkgs+=(postgresql)
  command -v redis-server >/dev/null || pkgs+=(redis-server)
  if [ ${#pkgs[@]} -gt 0 ]; then
    [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null \
      || die "missing ${pkgs[*]}: install them (Debian: apt-get install ${pkgs[*]}) or run as root"
    say "installing ${pkgs[*]} (apt-get)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      -o DPkg::Lock::Timeout=300 "${pkgs[@]}" >/dev/null) || die "apt-get install ${pkgs[*]} failed"
    # Debian's packages may start system-wide services; this cluster runs its own.
    command -v service >/dev/null && { service redis-server stop >/dev/null 2>&1 || true; }
  fi
  pg_bin >/dev/null || die "PostgreSQL's initdb not found under /usr/lib/postgresql/*/bin"
  [ -x "$PY" ] || die "no Python at $PY: create the venv first (python3 -m venv .venv)"
  if ! "$PY" -c "import dagster_celery, dagster_postgres, moto.server, redis" 2>/dev/null; then
    say "installing the [cluster] extra (pip)"
    "$PY" -m pip install --quiet -e "$REPO[cluster]" || die "pip install -e .[cluster] failed"
  fi
}

port_free() {
  ! "$PY" - "$1" <<'PYEOF'
import socket, sys
s = socket.socket()
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PYEOF
}

alive() { [ -f "$STATE/pids/$1" ] && kill -0 "$(cat "$STATE/pids/$1")" 2>/dev/null; }

start() {  # start NAME DIR COMMAND...: in its own session (stoppable as a group), logged
  local name=$1 dir=$2; shift 2
  if alive "$name"; then say "$name already running"; return 0; fi
  mkdir -p "$STATE/pids" "$STATE/logs"
  (cd "$dir" && exec setsid "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null) &
  echo $! >"$STATE/pids/$name"
}

wait_for() {  # wait_for WHAT SECONDS COMMAND...
  local what=$1 limit=$2 i; shift 2
  for ((i = 0; i < limit * 5; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "$what did not come up within ${limit}s (logs: $STATE/logs/)"
}

write_env() {
  [ -f "$STATE/cluster.env" ] && return 0
  local password
  password=$("$PY" -c "import secrets; print(secrets.token_hex(16))")
  umask 077
  cat >"$STATE/cluster.env" <<EOF
export DAGSTER_PG_HOST=$HOST
export DAGSTER_PG_PORT=$PG_PORT
export DAGSTER_PG_USER=quantbot
export DAGSTER_PG_PASSWORD=$password
export DAGSTER_PG_DB=dagster
export QUANTBOT_CELERY_BROKER=redis://$HOST:$REDIS_PORT/0
export QUANTBOT_CELERY_BACKEND=redis://$HOST:$REDIS_PORT/1
export QUANTBOT_S3_ENDPOINT=http://$HOST:$S3_PORT
export AWS_ACCESS_KEY_ID=quantbot-local
export AWS_SECRET_ACCESS_KEY=$password
export AWS_REGION=us-east-1
export QUANTBOT_RUNS_URL=s3://$BUCKET/runs
export QUANTBOT_CATALOG_URL=s3://$BUCKET/catalog/backtest_catalog.duckdb
export QUANTBOT_EXPORTS_URL=s3://$BUCKET/exports
export QUANTBOT_CALLS=s3://$BUCKET/data/calls.parquet
export QUANTBOT_CANDLES=s3://$BUCKET/data/candles
export QUANTBOT_UI_URL=http://$HOST:$UI_PORT
export QUANTBOT_PG_PORT=$PG_PORT
export QUANTBOT_REDIS_PORT=$REDIS_PORT
export QUANTBOT_S3_PORT=$S3_PORT
export QUANTBOT_UI_PORT=$UI_PORT
export PATH=$BIN:\$PATH
EOF
  umask 022
}

process_env() {  # the environment of one Dagster process: its own home and directories
  local home=$STATE/$1
  mkdir -p "$home"
  cp "$REPO/deploy/dagster.yaml" "$home/dagster.yaml"
  export DAGSTER_HOME=$home
  export QUANTBOT_DATA_DIR=$home/data
  export QUANTBOT_RUNS_DIR=$home/runs
  export QUANTBOT_CATALOG=$home/data/backtest_catalog.duckdb
  export QUANTBOT_EXPORTS_DIR=$home/data/exports
  export QUANTBOT_CACHE_DIR=$home/cache
  export PYTHONPATH=$REPO/deploy/celery
}

pg_root() {  # PostgreSQL's directory: under the state, or where the postgres user can reach it
  if [ -f "$STATE/postgres.dir" ]; then cat "$STATE/postgres.dir"; return 0; fi
  local dir=$STATE/postgres
  if [ "$(id -u)" = "0" ] && ! runuser -u postgres -- test -x "$STATE"; then
    dir=$(mktemp -d /var/tmp/quantbot-cluster-pg.XXXXXX)
  fi
  echo "$dir" >"$STATE/postgres.dir"
  echo "$dir"
}

start_postgres() {
  local bin root data
  bin=$(pg_bin)
  root=$(pg_root)
  data=$root/data
  mkdir -p "$root/sock"
  if [ "$(id -u)" = "0" ]; then chown -R postgres: "$root"; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    # shellcheck disable=SC1091
    local pwfile=$root/pw
    (umask 077 && . "$STATE/cluster.env" && printf '%s\n' "$DAGSTER_PG_PASSWORD" >"$pwfile")
    [ "$(id -u)" = "0" ] && chown postgres: "$pwfile"
    as_pg "$bin/initdb" -D "$data" -U quantbot --pwfile="$pwfile" --auth-host=scram-sha-256 \
      --auth-local=trust -E UTF8 >"$STATE/logs/initdb.log" 2>&1 || die "initdb failed: $STATE/logs/initdb.log"
    rm -f "$pwfile"
  fi
  if ! as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_pg "$bin/pg_ctl" -D "$data" -l "$root/server.log" -w -t 60 start \
      -o "-c listen_addresses=$HOST -p $PG_PORT -k $root/sock" >/dev/null \
      || die "PostgreSQL did not start: $root/server.log"
  fi
  if ! as_pg "$bin/psql" -h "$root/sock" -p "$PG_PORT" -U quantbot -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = 'dagster'" | grep -q 1; then
    as_pg "$bin/createdb" -h "$root/sock" -p "$PG_PORT" -U quantbot dagster
  fi
}

cmd_up() {
  install_missing
  mkdir -p "$STATE/logs" "$STATE/pids"
  chmod 755 "$STATE"
  write_env
  # shellcheck disable=SC1091
  . "$STATE/cluster.env"
  local service port
  for service in redis:$REDIS_PORT s3:$S3_PORT webserver:$UI_PORT; do
    port=${service#*:}
    alive "${service%%:*}" || port_free "$port" \
      || die "port $port (${service%%:*}) is taken by another program: set QUANTBOT_*_PORT"
  done
  { [ -f "$STATE/postgres.dir" ] && [ -f "$(pg_root)/data/postmaster.pid" ]; } || port_free "$PG_PORT" \
    || die "port $PG_PORT (postgres) is taken by another program: set QUANTBOT_PG_PORT"
  start_postgres
  mkdir -p "$STATE/redis"
  start redis "$STATE/redis" redis-server --bind $HOST --port "$REDIS_PORT" --dir "$STATE/redis" \
    --save "" --appendonly no --daemonize no
  start s3 "$STATE" "$BIN/moto_server" -H $HOST -p "$S3_PORT"
  wait_for Redis 30 "$PY" -c "import redis; redis.Redis(port=$REDIS_PORT).ping()"
  wait_for "the S3 server" 30 "$PY" -c "import urllib.request; urllib.request.urlopen('http://$HOST:$S3_PORT/')"
  "$PY" -c "from quantbot_assets.storage import create_bucket; create_bucket('s3://$BUCKET')"

  # Dagster's schema in PostgreSQL, once, before several processes race to create it.
  (process_env admin && "$PY" -c "import dagster; dagster.DagsterInstance.get().upgrade()" \
    >"$STATE/logs/migrate.log" 2>&1) || die "Dagster storage migration failed: $STATE/logs/migrate.log"

  local i
  for ((i = 1; i <= WORKERS; i++)); do
    (process_env "worker$i" && start "worker$i" "$STATE/worker$i" "$BIN/celery" -A dagster_celery.app \
      worker -P solo -c 1 --prefetch-multiplier=1 -Q dagster -n "worker$i@%h" -l INFO)
  done
  (process_env daemon && start daemon "$STATE/daemon" "$BIN/dagster-daemon" run \
    -m quantbot_assets.definitions)
  (process_env webserver && start webserver "$STATE/webserver" "$BIN/dagster-webserver" \
    -h $HOST -p "$UI_PORT" -m quantbot_assets.definitions)
  wait_for "the webserver" 120 "$PY" -c \
    "import urllib.request; urllib.request.urlopen('http://$HOST:$UI_PORT/server_info')"
  wait_for "$WORKERS Celery workers" 60 workers_ready
  say "cluster up: UI http://$HOST:$UI_PORT, bucket s3://$BUCKET at http://$HOST:$S3_PORT"
  say "client environment: source <($0 env)"
}

workers_ready() {
  local n
  n=$("$PY" - <<PYEOF
from celery import Celery
app = Celery(broker="redis://$HOST:$REDIS_PORT/0")
print(len(app.control.ping(timeout=1.0) or []))
PYEOF
)
  [ "${n:-0}" -ge "$WORKERS" ]
}

stop() {  # stop NAME: SIGTERM to its process group, SIGKILL after 20 s
  local name=$1 pid i
  [ -f "$STATE/pids/$name" ] || return 0
  pid=$(cat "$STATE/pids/$name")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      say "$name did not stop on SIGTERM: SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$STATE/pids/$name"
}

cmd_down() {
  local name bin
  for name in webserver daemon $(cd "$STATE/pids" 2>/dev/null && ls worker* 2>/dev/null) s3 redis; do
    stop "$name"
  done
  if bin=$(pg_bin) && [ -f "$STATE/postgres.dir" ] && [ -f "$(pg_root)/data/PG_VERSION" ]; then
    as_pg "$bin/pg_ctl" -D "$(pg_root)/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  say "cluster down (state kept in $STATE)"
}

cmd_status() {
  local name state bin
  printf '%-10s %-8s %s\n' process state pid
  for name in webserver daemon $(cd "$STATE/pids" 2>/dev/null && ls worker* 2>/dev/null) s3 redis; do
    if alive "$name"; then state=up; else state=down; fi
    printf '%-10s %-8s %s\n' "$name" "$state" "$(cat "$STATE/pids/$name" 2>/dev/null || echo -)"
  done
  if bin=$(pg_bin) && [ -f "$STATE/postgres.dir" ] \
      && as_pg "$bin/pg_ctl" -D "$(pg_root)/data" status >/dev/null 2>&1; then
    printf '%-10s %-8s %s\n' postgres up "$(head -1 "$(pg_root)/data/postmaster.pid")"
  else
    printf '%-10s %-8s %s\n' postgres down -
  fi
}

cmd_upload() {
  [ $# -eq 2 ] || die "usage: $0 upload CALLS_FILE CANDLES_FILE_OR_DIR"
  # shellcheck disable=SC1091
  . "$STATE/cluster.env"
  "$PY" - "$1" "$2" <<'PYEOF'
import os, sys
from pathlib import Path
from quantbot_assets.storage import open_location, publish_tree, put_file

calls, candles = Path(sys.argv[1]), Path(sys.argv[2])
if not calls.is_file():
    sys.exit(f"upload: {calls}: not a file")
put_file(calls, open_location(os.environ["QUANTBOT_CALLS"]))
target = open_location(os.environ["QUANTBOT_CANDLES"])
if candles.is_dir():
    publish_tree(candles, target)
elif candles.is_file():
    put_file(candles, target.child(candles.name))
else:
    sys.exit(f"upload: {candles}: no such file or directory")
print(f"uploaded {calls} -> {os.environ['QUANTBOT_CALLS']}, {candles} -> {os.environ['QUANTBOT_CANDLES']}")
PYEOF
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  purge)
    cmd_down
    [ -f "$STATE/postgres.dir" ] && rm -rf "$(pg_root)"
    rm -rf "$STATE"
    say "removed $STATE"
    ;;
  status) cmd_status ;;
  env) [ -f "$STATE/cluster.env" ] || die "no cluster state in $STATE (run: $0 up)"; cat "$STATE/cluster.env" ;;
  upload) shift; cmd_upload "$@" ;;
  *) die "usage: $0 up|down|purge|status|env|upload CALLS CANDLES" ;;
esac
