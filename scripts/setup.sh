#!/usr/bin/env bash
# Shared set-up for scripts/run and scripts/test (sourced, not run).
#
# On a fresh Debian machine with Rust it installs what is missing (the
# wasm32-wasip2 target, PostgreSQL + PostGIS, Redis, and for tests Chromium),
# starts Postgres and Redis if they are not running, and builds every Wasm
# component. Everything it does is idempotent: on a machine that has it all,
# it only checks.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Cargo's target folder lives outside the clone so a fresh clone (and CI)
# reuses earlier builds; `target` in the clone points at it, which keeps the
# `source` paths in spin.toml the same for `spin up`.
export CARGO_TARGET_DIR="${VILLAGE_TARGET_DIR:-$HOME/.cache/village/target}"
mkdir -p "$CARGO_TARGET_DIR"
if [ ! -e target ]; then ln -s "$CARGO_TARGET_DIR" target; fi

# The shared target folder outlives clones, and every clone path builds its
# own copies of the workspace's crates: left alone it filled the disk (73 GB
# after a day of sessions and CI runs). Test and binary executables are
# relinked in seconds, so those not written in the last hour are deleted,
# and incremental state (a local editing aid, gigabytes per path) goes when
# the folder passes 40 GB. Cargo rebuilds any output it finds missing.
prune_target() {
  local deps="$CARGO_TARGET_DIR/debug/deps"
  [ -d "$deps" ] || return 0
  find "$deps" -maxdepth 1 -type f ! -name '*.*' -mmin +60 -delete 2>/dev/null
  local kb
  kb=$(du -sk "$CARGO_TARGET_DIR" 2>/dev/null | cut -f1)
  if [ "${kb:-0}" -gt $((40 * 1024 * 1024)) ]; then
    log "target folder over 40 GB: dropping incremental build state"
    rm -rf "$CARGO_TARGET_DIR"/debug/incremental "$CARGO_TARGET_DIR"/release/incremental
  fi
  return 0
}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ $apt_updated -eq 0 ]; then
    log "apt-get update"
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_rust_target() {
  if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    log "adding the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
  fi
}

pg_major() {
  if command -v pg_lsclusters >/dev/null 2>&1 && [ -n "$(pg_lsclusters -h 2>/dev/null)" ]; then
    pg_lsclusters -h | awk 'NR==1 {print $1}'
  else
    echo 15
  fi
}

ensure_postgres() {
  apt_install postgresql-common
  local major; major="$(pg_major)"
  apt_install "postgresql-$major" "postgresql-$major-postgis-3"
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    log "starting PostgreSQL $major"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$major" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
  fi
  # The app connects over TCP as `postgres`. A stock Debian cluster wants a
  # password there: give the role one (over the local socket) and use it.
  export VILLAGE_PG_PASSWORD="${VILLAGE_PG_PASSWORD:-}"
  if ! PGPASSWORD="$VILLAGE_PG_PASSWORD" psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
    log "setting a local password for the postgres role"
    VILLAGE_PG_PASSWORD=village
    (cd / && $SUDO -u postgres psql -qc "ALTER ROLE postgres PASSWORD 'village'" >/dev/null 2>&1) ||
      (cd / && su postgres -c "psql -qc \"ALTER ROLE postgres PASSWORD 'village'\"" >/dev/null)
  fi
  export PGPASSWORD="$VILLAGE_PG_PASSWORD"
  export SPIN_VARIABLE_DB_PASSWORD="$VILLAGE_PG_PASSWORD"
  # The local cluster's certificate is Debian's self-signed one, which a
  # verifying client (Spin's, ours) refuses: say so, and talk plain text.
  export SPIN_VARIABLE_DB_SSLMODE=disable
  export VILLAGE_TEST_PG="postgres://postgres:${VILLAGE_PG_PASSWORD}@127.0.0.1:5432/postgres?sslmode=disable"
}

ensure_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then apt_install redis-server; fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    log "starting Redis"
    mkdir -p /tmp/village-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /tmp/village-redis --logfile /tmp/village-redis/redis.log
    for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.2; done
  fi
}

# The real Spin CLI (3.6.3, what production runs) and its cron trigger
# plugin, for the end-to-end tests' second run. Neither is on a package
# registry: `../shared/spin/install` (beside the clone, or
# VILLAGE_SPIN_INSTALLER) unpacks them offline into ~/.cache/village/spin.
ensure_spin() {
  local installer="${VILLAGE_SPIN_INSTALLER:-$ROOT/../shared/spin/install}"
  if [ ! -x "$installer" ]; then
    log "the Spin CLI installer is missing ($installer): the tests need the real Spin 3.6.3 (set VILLAGE_SPIN_INSTALLER)"
    return 1
  fi
  log "installing the Spin CLI and its cron plugin (offline)"
  eval "$("$installer")"
  export OTEL_SDK_DISABLED=true
  spin --version >&2
}

# Every Spin component crate: the application's functions and the runtime's fixtures.
wasm_crates() {
  for d in functions/*/ fetch/*/ runtime/fixtures/*/; do
    [ -f "$d/Cargo.toml" ] && basename "$d"
  done
}

build_components() {
  local args=()
  for c in $(wasm_crates); do args+=(-p "$c"); done
  log "building $(( ${#args[@]} / 2 )) components for wasm32-wasip2 (release)"
  cargo build --quiet --target wasm32-wasip2 --release "${args[@]}"
}

# The local object store: `s3s-fs` (crates.io), an S3 server over a folder
# that checks SigV4 signatures, presigned URLs' expiry and signed headers
# included. 0.14.1 is the newest that builds with Rust 1.95 (0.15 wants
# 1.96). Installed once into ~/.cache/village/tools.
S3S_VERSION=0.14.1
ensure_s3s() {
  local root="$HOME/.cache/village/tools"
  export PATH="$root/bin:$PATH"
  if ! s3s-fs --version 2>/dev/null | grep -q "$S3S_VERSION"; then
    log "installing s3s-fs $S3S_VERSION (the local S3 server)"
    CARGO_TARGET_DIR="$HOME/.cache/village/tools-target" \
      cargo install --quiet --locked --root "$root" --features binary --version "$S3S_VERSION" s3s-fs
  fi
}

# The local Stripe: `localstripe` (PyPI), a stateful fake of Stripe's API
# (payment intents, refunds, balance transactions, signed webhooks, its own
# Stripe.js), pinned, in a virtualenv under ~/.cache/village/tools.
# scripts/run-localstripe.py runs it on 127.0.0.1 only.
LOCALSTRIPE_VERSION=1.15.10
ensure_localstripe() {
  local venv="$HOME/.cache/village/tools/localstripe"
  if ! "$venv/bin/python" -c "import localstripe" 2>/dev/null \
     || ! "$venv/bin/pip" show localstripe 2>/dev/null | grep -q "Version: $LOCALSTRIPE_VERSION"; then
    command -v python3 >/dev/null 2>&1 || apt_install python3
    python3 -c "import ensurepip, venv" 2>/dev/null || apt_install python3-venv
    log "installing localstripe $LOCALSTRIPE_VERSION (the local Stripe)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "localstripe==$LOCALSTRIPE_VERSION"
  fi
  export VILLAGE_LOCALSTRIPE_PYTHON="$venv/bin/python"
}

# Starts localstripe on 127.0.0.1:$1 unless something answers there, and
# points its webhook deliveries at $2 signed with secret $3.
start_localstripe() {
  local port="$1" hook="$2" secret="$3"
  command -v curl >/dev/null 2>&1 || apt_install curl
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    log "starting localstripe on 127.0.0.1:$port"
    "$VILLAGE_LOCALSTRIPE_PYTHON" "$ROOT/scripts/run-localstripe.py" "$port" >/tmp/village-localstripe.log 2>&1 &
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  fi
  curl -sf -X POST "http://127.0.0.1:$port/_config/webhooks/village" \
    -d "url=$hook" -d "secret=$secret" >/dev/null \
    || log "could not register the webhook with localstripe"
}

# Starts s3s-fs on 127.0.0.1:$1 over folder $2 with bucket `village`,
# with the development keys, unless something already answers there
# (S3S_PID: the process started, if any).
S3S_PID=""
start_s3s() {
  local port="$1" dir="$2"
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
  mkdir -p "$dir/village"
  log "starting s3s-fs on 127.0.0.1:$port ($dir)"
  s3s-fs --host 127.0.0.1 --port "$port" --access-key village-dev --secret-key village-dev-secret "$dir" \
    >"$dir.log" 2>&1 &
  S3S_PID=$!
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
}
