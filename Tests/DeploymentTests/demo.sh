#!/usr/bin/env bash
# The local deployment end to end, as a newcomer runs it: scripts/demo answers a chat request with
# the tokens a single process generates, through all three tiers, and stops everything it started;
# scripts/up with a second edge worker lets ARTS use both edge nodes; scripts/down leaves no
# process, broker or queue behind.
#
#   Tests/DeploymentTests/demo.sh      one line per check, then "N passed, M failed"
#
# Runs the executables in HYPERION_BIN_DIR, else those of the release build in .build (or
# HYPERION_BUILD_PATH) when scripts/test has made them, else scripts/up builds them.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
# shellcheck source=../../scripts/lib/local.sh
. "$root/scripts/lib/local.sh"

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   - $1"; }
fail() { failed=$((failed + 1)); echo "FAIL - $1${2:+: $2}"; }
check() { if [ "$2" = 0 ]; then ok "$1"; else fail "$1" "${3:-}"; fi; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

scratch=$(mktemp -d)
cleanup() {
    # Never leave a deployment behind, whatever failed above.
    if [ "$(running_services)" -gt 0 ] || local_broker status >/dev/null 2>&1; then scripts/down >/dev/null 2>&1; fi
    rm -rf "$scratch"
}
trap cleanup EXIT

if [ "$(running_services)" -gt 0 ] || local_broker status >/dev/null 2>&1; then
    fail "no local deployment is running before the test" "run scripts/down first"
    finish
fi

products=(partition-planner scheduler stage-worker hyperion)
if [ -z "${HYPERION_BIN_DIR:-}" ]; then
    built=$(swift build -c release --scratch-path "${HYPERION_BUILD_PATH:-$root/.build}" --show-bin-path 2>/dev/null || true)
    complete=1
    for product in "${products[@]}"; do [ -x "$built/$product" ] || complete=0; done
    if [ "$complete" = 1 ]; then export HYPERION_BIN_DIR=$built; fi
fi

# Our processes, and only ours: the executables by full path, and every process of the local
# broker's Erlang node (its name is in their environment, not on their command line).
our_processes() {
    local bin=$1 proc
    pgrep -af -- "^$bin/(partition-planner|scheduler|stage-worker|hyperion)( |$)" || true
    for proc in /proc/[0-9]*; do
        if grep -qzx -- "RABBITMQ_NODENAME=$local_broker_node" "$proc/environ" 2>/dev/null; then
            echo "${proc#/proc/} $(tr '\0' ' ' <"$proc/cmdline" 2>/dev/null | cut -c1-120)"
        fi
    done
}

prompt="What is the capital of France?"
max_tokens=32

# --- scripts/demo ------------------------------------------------------------------------------
echo "== scripts/demo"
start=$SECONDS
scripts/demo --prompt "$prompt" --max-tokens "$max_tokens" >"$scratch/demo.out" 2>&1
demo_status=$?
echo "   (took $((SECONDS - start)) s)"
check "scripts/demo exits 0" "$demo_status" "exit $demo_status; its output ends with:$(printf '\n'; tail -n 25 "$scratch/demo.out")"
sed -n '/^answer:/,/^(the whole result/p' "$scratch/demo.out" | sed 's/^/   | /'
bin=${HYPERION_BIN_DIR:-$(swift build -c release --scratch-path "${HYPERION_BUILD_PATH:-$root/.build}" --show-bin-path 2>/dev/null)}

# The answer's tokens equal single-process generation's (which lists the end-of-generation token
# it stopped at; a result does not).
if [ -f "$run_dir/demo-result.json" ]; then
    "$bin/hyperion" generate --local --chat --json --max-tokens "$max_tokens" \
        --model "${HYPERION_MODEL:-$root/models/SmolLM2-135M-Instruct.Q4_1.gguf}" "$prompt" >"$scratch/local.json" 2>"$scratch/local.err"
    verdict=$(python3 - "$run_dir/demo-result.json" "$scratch/local.json" <<'PY'
import json, sys
remote = json.load(open(sys.argv[1]))["tokens"]
local = json.load(open(sys.argv[2]))["tokens"]
if len(local) == len(remote) + 1 and local[-1] in (0, 2):
    local = local[:-1]
if not remote:
    print("the demo's answer has no tokens")
elif remote != local:
    print("pipeline %s\n  single process %s" % (remote, local))
PY
    )
    check "the demo's answer has the tokens of hyperion generate --local --chat (same prompt)" \
        "$([ -z "$verdict" ] && [ -s "$scratch/local.json" ] && echo 0 || echo 1)" "${verdict:-$(cat "$scratch/local.err")}"
else
    fail "the demo's answer has the tokens of hyperion generate --local --chat (same prompt)" "no .run/demo-result.json"
fi

# The route it prints spans the three tiers, in order.
route=$(grep '^route: ' "$scratch/demo.out" | head -n 1)
route_tiers=$(grep -o '([a-z0-9_-]*)' <<<"$route" | tr -d '()' | paste -sd' ' -)
check "the printed route spans edge, fog and cloud (${route:-no route printed})" \
    "$([ "$route_tiers" = "edge fog cloud" ] && echo 0 || echo 1)" "tiers '$route_tiers'"
grep -q '^  edge-1 .*[0-9.]\+ \+[0-9.]\+$' "$scratch/demo.out"
check "the demo prints per-stage timings" $?
grep -q '^plan [0-9]' "$scratch/demo.out"
check "the demo prints the plan" $?

left=$(our_processes "$bin")
check "after scripts/demo no service or broker process remains" "$([ -z "$left" ] && echo 0 || echo 1)" "$left"

# --- scripts/up with two edge workers ------------------------------------------------------------
echo "== scripts/up --workers edge=2,fog=1,cloud=1"
scripts/up --workers edge=2,fog=1,cloud=1 >"$scratch/up.out" 2>&1
up_status=$?
check "scripts/up --workers edge=2,fog=1,cloud=1 exits 0" "$up_status" "$(tail -n 25 "$scratch/up.out")"
if [ "$up_status" = 0 ]; then
    grep -q '^  worker-edge-2 ' "$scratch/up.out"
    check "scripts/up prints what runs where (worker-edge-2 listed)" $?
    # Concurrent requests: ARTS counts what it has just routed to a node as that node's backlog.
    requests=10
    client_url=$(cat "$run_dir/amqp_url" 2>/dev/null)
    for ((i = 0; i < requests; i++)); do
        HYPERION_AMQP_URL=$client_url "$bin/hyperion" generate --chat --json --max-tokens 8 --timeout 120 "Name a colour ($i)." \
            >"$scratch/result-$i.json" 2>"$scratch/result-$i.err" &
    done
    wait
    summary=$(python3 - "$scratch" "$requests" <<'PY'
import json, os, sys
first, results = {}, 0
for i in range(int(sys.argv[2])):
    try:
        result = json.load(open(os.path.join(sys.argv[1], "result-%d.json" % i)))
    except (OSError, ValueError):
        continue
    if result.get("type") == "result" and result.get("route"):
        results += 1
        first[result["route"][0]] = first.get(result["route"][0], 0) + 1
print(results, " ".join("%s=%d" % item for item in sorted(first.items())))
PY
    )
    read -r results shares <<<"$summary"
    check "all $requests concurrent requests get a result through the client user" \
        "$([ "$results" = "$requests" ] && echo 0 || echo 1)" "$results results; $(cat "$scratch"/result-*.err | sort | uniq -c | head -n 5)"
    check "ARTS routes requests to both edge nodes (first stages: $shares)" \
        "$([[ " $shares" == *" edge-1="* && " $shares" == *" edge-2="* ]] && echo 0 || echo 1)"
fi

# --- scripts/down ------------------------------------------------------------------------------
echo "== scripts/down"
broker_dir=$(local_broker dir)
scripts/down >"$scratch/down.out" 2>&1
check "scripts/down exits 0" $? "$(cat "$scratch/down.out")"
left=$(our_processes "$bin")
check "no service or broker process remains (pgrep)" "$([ -z "$left" ] && echo 0 || echo 1)" "$left"
local_broker status >/dev/null 2>&1
check "the local broker is stopped" "$([ $? -ne 0 ] && echo 0 || echo 1)"
check "no queue remains: the broker's data directory is gone" "$([ ! -e "$broker_dir/mnesia" ] && echo 0 || echo 1)" "$broker_dir/mnesia"
check "no pid file remains" "$(ls "$pid_dir"/*.pid >/dev/null 2>&1 && echo 1 || echo 0)" "$(ls "$pid_dir" 2>/dev/null)"
check "the client URL file is gone" "$([ ! -e "$run_dir/amqp_url" ] && echo 0 || echo 1)"

finish
