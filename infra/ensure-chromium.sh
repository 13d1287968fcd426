#!/usr/bin/env bash
# Make sure a headless-capable Chromium is at /usr/bin/chromium, for the browser end-to-end test
# (tests/serving/test_widget_e2e.py drives it with Playwright; no browser build is downloaded).
#
#   already there            -> nothing to do
#   root with apt-get        -> apt-get install chromium (Debian's package), non-interactive
#   otherwise                -> fail, saying what to install
#
# On success the last line printed is the browser's path.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

log() { echo "ensure-chromium: $*" >&2; }
die() { echo "ensure-chromium: $*" >&2; exit 1; }

version() { "$CHROMIUM" --version 2>/dev/null | head -n1 || true; }

if [[ -x "$CHROMIUM" ]]; then
    log "chromium found: $(version)"
    echo "$CHROMIUM"
    exit 0
fi

if [[ "${EUID:-$(id -u)}" -ne 0 ]]; then
    die "$CHROMIUM is missing and this is not root, so it cannot be installed here.
Install it (Debian: sudo apt-get install chromium; Ubuntu's chromium is a snap, which does not
provide $CHROMIUM: use a Debian-packaged build), then run this again."
fi
command -v apt-get >/dev/null 2>&1 \
    || die "$CHROMIUM is missing and apt-get is not available; install Chromium there"

export DEBIAN_FRONTEND=noninteractive

log "installing chromium with apt-get"
# The package lists are refreshed once, and only when the install cannot proceed without it.
if ! apt-get install -y -q --no-install-recommends chromium; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends chromium
fi

[[ -x "$CHROMIUM" ]] || die "$CHROMIUM still missing after installing the chromium package"
log "installed: $(version)"
echo "$CHROMIUM"
