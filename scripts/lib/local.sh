# Shared by scripts/up, scripts/down and scripts/demo (sourced, after they set $root): where the
# local deployment keeps its state, and its private broker node — distinct from the test broker of
# scripts/test, so both can run at once.
#
# Environment: HYPERION_LOCAL_BROKER_NODE (default hyperion-local@localhost),
# HYPERION_LOCAL_BROKER_PORT (5750), HYPERION_LOCAL_BROKER_DIST_PORT (25750).

run_dir="$root/.run"
pid_dir="$run_dir/pids"
log_dir="$run_dir/logs"
services_file="$run_dir/services"
local_broker_node=${HYPERION_LOCAL_BROKER_NODE:-hyperion-local@localhost}
local_broker_port=${HYPERION_LOCAL_BROKER_PORT:-5750}
local_broker_dist_port=${HYPERION_LOCAL_BROKER_DIST_PORT:-25750}

# local_broker COMMAND: scripts/broker (start | stop | status | dir | node) on the local node.
local_broker() {
    HYPERION_BROKER_NODE="$local_broker_node" HYPERION_BROKER_PORT="$local_broker_port" \
        HYPERION_BROKER_DIST_PORT="$local_broker_dist_port" HYPERION_BROKER_DIR="$run_dir/local-broker" \
        "$root/scripts/broker" "$@"
}

# process_start_ticks PID: the process's start time (field 22 of /proc/PID/stat), which tells a
# process we started from a later one that reuses its pid. Empty when no such process runs.
process_start_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    # The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    echo "${20}"
}

# recorded_alive PIDFILE: the pid in PIDFILE ("pid start-ticks") if that very process still runs.
recorded_alive() {
    local pid ticks
    read -r pid ticks <"$1" 2>/dev/null || return 1
    [ -n "$pid" ] && [ -n "$ticks" ] && [ "$(process_start_ticks "$pid")" = "$ticks" ] && echo "$pid"
}

# running_services: how many processes recorded under .run/pids still run.
running_services() {
    local count=0 file
    for file in "$pid_dir"/*.pid; do
        [ -e "$file" ] || continue
        if recorded_alive "$file" >/dev/null; then count=$((count + 1)); fi
    done
    echo "$count"
}
