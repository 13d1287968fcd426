#!/usr/bin/env bash
# Make sure the `wrk` HTTP load generator is available for `recs bench-serve`.
#
#   already on PATH      -> nothing to do
#   root with apt-get    -> apt-get install wrk (Debian/Ubuntu package `wrk`)
#   otherwise            -> say so and exit 0: bench-serve then falls back to its own Python
#                           load generator (and names it in its output), so a missing wrk is
#                           not an error
set -euo pipefail

log() { echo "ensure-wrk: $*"; }

if command -v wrk >/dev/null 2>&1; then
    log "wrk found: $(wrk --version 2>&1 | head -n1)"
    exit 0
fi

if [[ "${EUID:-$(id -u)}" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    log "wrk is not on PATH and cannot be installed here (needs root and apt-get);"
    log "bench-serve will use its Python load generator instead."
    log "Install it yourself with: sudo apt-get install wrk (Debian/Ubuntu) or brew install wrk"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
log "installing wrk with apt-get"
# The package lists are refreshed once, and only when the install cannot proceed without it.
if ! apt-get install -y -q --no-install-recommends wrk; then
    apt-get update -q
    if ! apt-get install -y -q --no-install-recommends wrk; then
        log "apt-get could not install wrk; bench-serve will use its Python load generator"
        exit 0
    fi
fi

if command -v wrk >/dev/null 2>&1; then
    log "installed: $(wrk --version 2>&1 | head -n1)"
else
    log "wrk still not on PATH after install; bench-serve will use its Python load generator"
fi
