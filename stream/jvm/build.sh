#!/usr/bin/env bash
# Build the JVM stages (Java twins of the Python operators) into one shaded jar:
#
#   bash stream/jvm/build.sh      # -> stream/jvm/target/recs-stream-jvm.jar (run by `make`)
#   RECS_MAVEN_REPO=dir bash stream/jvm/build.sh   # Maven local repository (download cache)
#
# Flink's jars are `provided` (pom.xml): the jar holds only this project's classes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
die() { echo "stream/jvm/build: $*" >&2; exit 1; }
command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH (install Maven, e.g. apt-get install maven)"

mvn_args=(-q -B -Dstyle.color=never -f "$here/pom.xml")
if [[ -n "${RECS_MAVEN_REPO:-}" ]]; then
    mkdir -p "$RECS_MAVEN_REPO"
    mvn_args+=("-Dmaven.repo.local=$RECS_MAVEN_REPO")
fi
start=$SECONDS
# (Debian's Maven 3.8 prints stray colour resets even in batch mode: strip them.)
mvn "${mvn_args[@]}" package 2>&1 | sed -u 's/\x1b\[[0-9;]*m//g' \
    || die "mvn failed; see the output above"
[[ -f "$here/target/recs-stream-jvm.jar" ]] || die "no target/recs-stream-jvm.jar was built"
echo "stream/jvm/build: target/recs-stream-jvm.jar ($((SECONDS - start)) s)"
