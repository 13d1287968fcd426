#!/usr/bin/env bash
# The image's entry point, in the shape Flink's own images have (the Kubernetes operator and the
# compose file call it): `jobmanager` / `taskmanager` start that process in the foreground with
# FLINK_PROPERTIES appended to the configuration; anything else is run as given (the operator's
# native Kubernetes mode passes its own `kubernetes-jobmanager.sh ...` command lines).
set -euo pipefail

conf="${FLINK_HOME}/conf/config.yaml"
if [[ -n "${FLINK_PROPERTIES:-}" ]]; then
    printf '%s\n' "${FLINK_PROPERTIES}" >> "${conf}"
fi

case "${1:-help}" in
    jobmanager)  shift; exec "${FLINK_HOME}/bin/jobmanager.sh" start-foreground "$@" ;;
    taskmanager) shift; exec "${FLINK_HOME}/bin/taskmanager.sh" start-foreground "$@" ;;
    help)        echo "usage: jobmanager | taskmanager | COMMAND [ARG...]"; exit 0 ;;
    *)           exec "$@" ;;
esac
