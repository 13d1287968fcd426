#!/usr/bin/env bash
# Make sure a `redis-server` binary is available; the project starts its own Redis processes
# (infra/services.py) on free loopback ports, so no system daemon is wanted.
#
#   already on PATH          -> nothing to do
#   root with apt-get        -> apt-get install redis-server, with the package's daemon kept from
#                               starting (policy-rc.d) and its unit disabled
#   otherwise                -> fail, saying what to install (or point REDIS_URL at a Redis)
set -euo pipefail

log() { echo "ensure-redis: $*"; }
die() { echo "ensure-redis: $*" >&2; exit 1; }

# The store's Lua scripts and commands need Redis 6 or newer (tested: Debian 12's 7.0.15).
redis_major() { redis-server --version | sed -n 's/.* v=\([0-9]*\)\..*/\1/p' | head -n1; }
check_version() {
    local major
    major="$(redis_major)"
    [[ -n "$major" && "$major" -ge 6 ]] \
        || die "redis-server on PATH is version ${major:-unknown} ($(command -v redis-server));
Redis 6 or newer is needed (Debian 12: apt-get install redis-server)"
}

if command -v redis-server >/dev/null 2>&1; then
    check_version
    log "redis-server found: $(redis-server --version | head -n1)"
    exit 0
fi

if [[ "${EUID:-$(id -u)}" -ne 0 ]]; then
    die "redis-server is not on PATH and this is not root, so it cannot be installed here.
Install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis),
or export REDIS_URL=redis://host:port/0 to use a Redis that is already running."
fi
command -v apt-get >/dev/null 2>&1 \
    || die "redis-server is not on PATH and apt-get is not available; install Redis 6 or newer"

pidfile=/run/redis/redis-server.pid
had_pidfile=""
[[ -e "$pidfile" ]] && had_pidfile=1

log "installing redis-server with apt-get"
# shellcheck source=infra/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
apt_install redis-server

# Under systemd the package enables its unit; this project never uses the system service.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now redis-server.service >/dev/null 2>&1 || true
fi
# Should a daemon have started despite the policy, stop that one process by the pid it wrote.
if [[ -z "$had_pidfile" && -s "$pidfile" ]]; then
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        log "stopping the redis-server daemon the install started (pid $pid)"
        kill "$pid" || true
    fi
fi

command -v redis-server >/dev/null 2>&1 || die "redis-server still not on PATH after install"
check_version
log "installed: $(redis-server --version | head -n1)"
