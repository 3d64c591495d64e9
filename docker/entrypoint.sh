#!/bin/sh
# Entry point of the Hyperion image: the first argument names the service, the rest are its flags.
# Every flag defaults from a HYPERION_* environment variable (docs/deployment-contract.md), so
# compose only sets the environment. The service replaces this shell (exec), so it is the process
# that receives SIGTERM for a graceful drain.
set -eu

share=${HYPERION_SHARE_DIR:-/usr/local/share/hyperion}

usage() {
    cat <<'USAGE'
usage: <image> SERVICE [flags...]

services:
  planner       partition-planner: plans from the topology and telemetry, answers hyperion.plan.get
  scheduler     scheduler: admits requests from hyperion.ingress and drives their steps
  worker        stage-worker: serves one tier's block range (HYPERION_TIER)
  link          link-emulator: one emulated inter-tier link (docs/design.md §11; runs as the worker user)
  cli           hyperion: the command-line client (generate, plan, status, ...)
  fetch-model   put the default model into HYPERION_MODEL_DIR (/models), sha256-checked; needs python3
                (compose runs it on python:3.11-slim; this image has no Python)
  init-broker   create the broker users (scripts/broker-users); needs rabbitmqctl
                (compose runs it on the rabbitmq image)
USAGE
}

if [ $# -eq 0 ]; then
    usage >&2
    exit 2
fi
service=$1
shift

case "$service" in
    planner) exec partition-planner "$@" ;;
    scheduler) exec scheduler "$@" ;;
    worker) exec stage-worker "$@" ;;
    link) exec link-emulator "$@" ;;
    cli) exec hyperion "$@" ;;
    fetch-model)
        if ! command -v python3 >/dev/null 2>&1; then
            echo "fetch-model: no python3 in this image; run docker/fetch-model.py on python:3.11-slim (compose's 'model' service does)" >&2
            exit 69
        fi
        exec python3 "$share/fetch-model.py" "$@"
        ;;
    init-broker)
        if ! command -v rabbitmqctl >/dev/null 2>&1 && [ -z "${RABBITMQCTL:-}" ]; then
            echo "init-broker: no rabbitmqctl in this image; run scripts/broker-users where it is (compose's 'init-broker' service runs on the rabbitmq image)" >&2
            exit 69
        fi
        exec bash "$share/broker-users" "$@"
        ;;
    -h | --help | help)
        usage
        exit 0
        ;;
    *)
        echo "unknown service '$service'" >&2
        usage >&2
        exit 2
        ;;
esac
