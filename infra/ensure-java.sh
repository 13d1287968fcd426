#!/usr/bin/env bash
# Make sure Java 17 (or newer) and Maven are available: the Kafka broker and Flink run on the JVM,
# and Maven resolves their jars (infra/pom.xml).
#
#   both on PATH, Java >= 17 -> nothing to do
#   root with apt-get        -> apt-get install openjdk-17-jdk-headless and/or maven
#   otherwise                -> fail at once, naming the missing package
#
# Tested with Debian 12's openjdk-17-jdk-headless 17.0.15 and maven 3.8.7.
set -euo pipefail

log() { echo "ensure-java: $*"; }
die() { echo "ensure-java: $*" >&2; exit 1; }

java_major() {
    # `java -version` prints e.g. 'openjdk version "17.0.15" 2025-04-15' (or "1.8.0_392" for 8).
    local v
    v="$(java -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
    v="${v#1.}"
    echo "${v%%[.+-]*}"
}

want=()
if ! command -v java >/dev/null 2>&1; then
    want+=(openjdk-17-jdk-headless)
elif (( $(java_major) < 17 )); then
    want+=(openjdk-17-jdk-headless)
    log "java on PATH is version $(java_major); Java 17 or newer is needed"
fi
command -v mvn >/dev/null 2>&1 || want+=(maven)

if (( ${#want[@]} == 0 )); then
    log "java $(java_major) and $(mvn -v 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | head -n1) found"
    exit 0
fi

if [[ "${EUID:-$(id -u)}" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    die "missing: ${want[*]} (Java 17 or newer and Maven are needed).
Install them (Debian/Ubuntu: sudo apt-get install ${want[*]}; macOS: brew install openjdk@17 maven)
and run make again."
fi

log "installing ${want[*]} with apt-get"
# shellcheck source=infra/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
apt_install "${want[@]}"

if [[ " ${want[*]} " == *" openjdk-17-jdk-headless "* ]] && (( $(java_major) < 17 )); then
    # An older default java stays first on PATH: point this run at the one just installed.
    die "openjdk-17-jdk-headless is installed but 'java' on PATH is still version $(java_major);
select it with: update-alternatives --config java"
fi
command -v mvn >/dev/null 2>&1 || die "mvn still not on PATH after install"
log "installed: java $(java_major), $(mvn -v 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | head -n1)"
