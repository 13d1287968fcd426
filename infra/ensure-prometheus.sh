#!/usr/bin/env bash
# Make sure `prometheus` and `promtool` are available. The project starts its own Prometheus
# (infra/prometheus_server.py) on a free loopback port with a generated config; the system
# service the Debian package ships is never used, started or stopped by anything here.
#
#   both already on PATH     -> print their paths and versions, nothing else
#   root with apt-get        -> apt-get install prometheus (no recommends: no node exporter), with
#                               invoke-rc.d kept from starting the package's daemon (policy-rc.d)
#                               and, under systemd, its unit disabled (not stopped)
#   otherwise                -> fail, saying what to install
set -euo pipefail

log() { echo "ensure-prometheus: $*"; }
die() { echo "ensure-prometheus: $*" >&2; exit 1; }

have_both() { command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; }

report() {
    log "prometheus: $(command -v prometheus) ($(prometheus --version 2>&1 | head -n1))"
    log "promtool: $(command -v promtool)"
}

if have_both; then
    report
    exit 0
fi

if [[ "${EUID:-$(id -u)}" -ne 0 ]]; then
    die "prometheus/promtool are not on PATH and this is not root, so they cannot be installed
here. Install them (Debian/Ubuntu: sudo apt-get install --no-install-recommends prometheus;
macOS: brew install prometheus), then run this script again."
fi
command -v apt-get >/dev/null 2>&1 \
    || die "prometheus/promtool are not on PATH and apt-get is not available; install Prometheus 2.x"

log "installing prometheus with apt-get"
# shellcheck source=infra/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
apt_install prometheus

# Under systemd the package enables its unit; this project never uses the system service, so it
# is kept from starting at boot. A service that already runs is not ours and is left alone.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable prometheus.service >/dev/null 2>&1 || true
    if systemctl is-active --quiet prometheus.service; then
        log "note: the system prometheus.service is running; it is not ours and is left alone"
    fi
fi

have_both || die "prometheus/promtool still not on PATH after install"
report
