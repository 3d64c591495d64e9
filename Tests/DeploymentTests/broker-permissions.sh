#!/usr/bin/env bash
# Least-privilege test against a real broker: creates the users with scripts/broker-users (name
# prefix "permtest<pid>-", a scratch vhost, fresh random passwords), runs broker_permissions.py (pika), then
# removes them. Prints "N passed, M failed" last; exits non-zero on any failure.
#
# Needs: a running broker (HYPERION_TEST_AMQP_URL and HYPERION_TEST_RABBITMQ_NODE, as exported by
# scripts/test; defaults from scripts/broker) and pika, from the project's own Python environment
# (scripts/python-env, pinned in scripts/python-requirements.txt).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here="$root/Tests/DeploymentTests"

export HYPERION_TEST_AMQP_URL=${HYPERION_TEST_AMQP_URL:-$("$root/scripts/broker" url)}
node=${HYPERION_TEST_RABBITMQ_NODE:-$("$root/scripts/broker" node)}

if ! venv_bin=$("$root/scripts/python-env"); then
    echo "FAIL - the project's Python environment with pika (scripts/python-env) is available"
    echo "0 passed, 1 failed"
    exit 1
fi
python="$venv_bin/python3"
if ! "$python" -c 'import pika' 2>/dev/null; then
    echo "FAIL - $python can import pika"
    echo "0 passed, 1 failed"
    exit 1
fi

# Names of this run only, so two runs sharing one broker never touch each other's users.
export PERMTEST_PREFIX="permtest$$-"
export PERMTEST_VHOST="hyperion-permtest-$$"
secret() { "$python" -c 'import secrets; print(secrets.token_urlsafe(18))'; }
for var in HYPERION_ADMIN_PASSWORD HYPERION_PLANNER_PASSWORD HYPERION_SCHEDULER_PASSWORD HYPERION_WORKER_PASSWORD \
    HYPERION_CLIENT_PASSWORD HYPERION_CLIENT_PASSWORD_ALICE HYPERION_CLIENT_PASSWORD_BOB HYPERION_MONITOR_PASSWORD; do
    export "$var=$(secret)"
done
export HYPERION_ADMIN_USER=admin HYPERION_CLIENTS="alice bob"
# A small bound, so the test can see the dead-letter policy drop the oldest.
export HYPERION_DEAD_MAX_LENGTH=5 PERMTEST_DEAD_MAX_LENGTH=5

# A fresh scratch env file keeps a developer's .env out of this test.
empty_env=$(mktemp)
users=("$root/scripts/broker-users" --node "$node" --vhost "$PERMTEST_VHOST" --user-prefix "$PERMTEST_PREFIX"
       --env-file "$empty_env" --wait 30)
cleanup() {
    "${users[@]}" --remove >/dev/null 2>&1 || true
    rm -f "$empty_env"
}
trap cleanup EXIT

if ! "${users[@]}"; then
    echo "FAIL - scripts/broker-users created the users on $node"
    echo "0 passed, 1 failed"
    exit 1
fi

"$python" "$here/broker_permissions.py"
