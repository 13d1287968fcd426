#!/usr/bin/env bash
# Resolve the Kafka broker and Flink's Kafka connector from Maven Central into infra/lib/.
#
#   bash infra/fetch-jars.sh          # idempotent; a no-op when infra/pom.xml has not changed
#   RECS_MAVEN_REPO=dir bash infra/fetch-jars.sh   # Maven local repository (download cache)
#   RECS_FETCH_FORCE=1 bash infra/fetch-jars.sh    # resolve again even if up to date
#
# Jars are resolved into a staging directory and swapped in only when Maven succeeds, so an
# interrupted run never leaves a half-filled lib/kafka behind.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
lib="$here/lib"
stamp="$lib/.pom.sha256"
mkdir -p "$lib"

die() { echo "fetch-jars: $*" >&2; exit 1; }

command -v java >/dev/null 2>&1 || die "java not found on PATH (Java 17 or newer is needed)"
command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH (install Maven, e.g. apt-get install maven)"

# One resolver at a time (make -j, two shells).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$lib/.lock"
    flock 9
fi

want="$(sha256sum "$here/pom.xml" | cut -d' ' -f1)"
if [[ -z "${RECS_FETCH_FORCE:-}" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
    && compgen -G "$lib/kafka/kafka_2.13-*.jar" >/dev/null \
    && compgen -G "$lib/flink/flink-sql-connector-kafka-*.jar" >/dev/null; then
    echo "fetch-jars: infra/lib is up to date"
    exit 0
fi

staging="$lib/.staging"
rm -rf "$staging"
mvn_args=(-q -B -Dstyle.color=never -f "$here/pom.xml" "-Dlib.dir=$staging")
if [[ -n "${RECS_MAVEN_REPO:-}" ]]; then
    mkdir -p "$RECS_MAVEN_REPO"
    mvn_args+=("-Dmaven.repo.local=$RECS_MAVEN_REPO")
fi

start=$SECONDS
echo "fetch-jars: resolving Kafka broker and Flink Kafka connector jars (Maven)..."
# (Debian's Maven 3.8 prints stray colour resets even in batch mode: strip them.)
mvn "${mvn_args[@]}" package 2>&1 | sed -u 's/\x1b\[[0-9;]*m//g' \
    || die "mvn failed; see the output above"

compgen -G "$staging/kafka/kafka_2.13-*.jar" >/dev/null || die "no kafka_2.13 jar was resolved"
compgen -G "$staging/flink/flink-sql-connector-kafka-*.jar" >/dev/null \
    || die "no flink-sql-connector-kafka jar was resolved"

rm -rf "$lib/kafka" "$lib/flink"
mv "$staging/kafka" "$lib/kafka"
mv "$staging/flink" "$lib/flink"
rm -rf "$staging" "$lib/.build"
echo "$want" >"$stamp"
echo "fetch-jars: $(ls "$lib/kafka" | wc -l) jars in infra/lib/kafka," \
     "$(ls "$lib/flink")" "in infra/lib/flink ($((SECONDS - start)) s)"
