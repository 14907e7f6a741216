#!/usr/bin/env bash
# The end-to-end demo: installs missing packages, builds, starts a throwaway Kafka
# (quench-devkafka), the Azure simulator (tests/azure-sim, loaded with
# tests/data/scenarios/basic.json) and the worker, feeds it every file in tests/data/demo/ as one
# message each, answers the first alert's contact request as its owner ("unexpected"), and prints
# the outcome events the worker published as a timeline: contact, verdict, evidence, then the
# containment of the compromised user, subscription and VM in the simulator. Unattended;
# everything it starts is stopped and its temporary directory removed on exit, whatever happens.
#
# Environment: BUILD_DIR (default build), DEMO_TIMEOUT (seconds to wait for outcomes, default 60),
# DEMO_DATA_DIR (default tests/data/demo).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
build_dir=${BUILD_DIR:-build}
if [[ "$build_dir" != /* ]]; then
    build_dir="$root/$build_dir"
fi
bin_dir="$build_dir/bin"
data_dir=${DEMO_DATA_DIR:-$root/tests/data/demo}
timeout_s=${DEMO_TIMEOUT:-60}
python=/usr/bin/python3
helper="$root/scripts/lib/timeline.py"

tmp=""
devkafka_pid=""
sim_pid=""
worker_pid=""

say() {
    printf '==> %s\n' "$*"
}

fail() {
    printf 'demo: %s\n' "$*" >&2
    exit 1
}

# running PID: the process exists and is not a zombie waiting to be reaped.
running() {
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ -n "$state" && "$state" != Z* ]]
}

# stop PID NAME TENTHS: SIGTERM, wait up to TENTHS x 0.1 s, then SIGKILL. Reaps the process and
# leaves its exit status in stop_status.
stop_status=0
stop() {
    local pid=$1 name=$2 tenths=$3 i=0
    stop_status=0
    [[ -n "$pid" ]] || return 0
    if running "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        while ((i < tenths)) && running "$pid"; do
            sleep 0.1
            i=$((i + 1))
        done
        if running "$pid"; then
            printf 'demo: %s (pid %s) did not stop in %s s; killing it\n' "$name" "$pid" \
                "$((tenths / 10))" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || stop_status=$?
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop "$worker_pid" quench 150
    stop "$devkafka_pid" quench-devkafka 50
    stop "$sim_pid" azure-sim 50
    if [[ -n "$tmp" ]]; then
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Every regular file in the data directory is one Kafka message, in name order: *.json alerts,
# and deliberately broken inputs under other names (e.g. *.txt) meant for the DLQ. Docs skipped.
inputs=()
for f in "$data_dir"/*; do
    case $f in
    *.md | */README*) continue ;;
    esac
    [[ -f "$f" ]] && inputs+=("$f")
done
((${#inputs[@]} > 0)) || fail "no input files in $data_dir"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/quench-demo.XXXXXX")

say "checking dependencies"
bash scripts/setup-deps.sh

say "building into $build_dir"
if ! BUILD_DIR=$build_dir bash scripts/build.sh >"$tmp/build.log" 2>&1; then
    tail -n 40 "$tmp/build.log" >&2
    fail "build failed"
fi
for exe in quench quench-devkafka; do
    [[ -x "$bin_dir/$exe" ]] || fail "$bin_dir/$exe was not built"
done

say "starting quench-devkafka"
"$bin_dir/quench-devkafka" --bootstrap-file "$tmp/bootstrap" >"$tmp/devkafka.out" \
    2>"$tmp/devkafka.log" &
devkafka_pid=$!
for ((i = 0; i < 100; i++)); do
    [[ -s "$tmp/bootstrap" ]] && break
    running "$devkafka_pid" || break
    sleep 0.1
done
if [[ ! -s "$tmp/bootstrap" ]]; then
    cat "$tmp/devkafka.log" >&2
    fail "quench-devkafka did not come up"
fi
boot=$(<"$tmp/bootstrap")
say "kafka at $boot"

say "starting the Azure simulator (tests/data/scenarios/basic.json)"
"$python" tests/azure-sim/azure_sim.py --scenario tests/data/scenarios/basic.json \
    --state-dir "$tmp/sim" --ready-file "$tmp/sim-ready.json" >"$tmp/sim.out" 2>"$tmp/sim.log" &
sim_pid=$!
for ((i = 0; i < 200; i++)); do
    [[ -s "$tmp/sim-ready.json" ]] && break
    running "$sim_pid" || break
    sleep 0.1
done
if [[ ! -s "$tmp/sim-ready.json" ]]; then
    cat "$tmp/sim.log" >&2
    fail "the Azure simulator did not come up"
fi

# The worker's configuration: Kafka, the simulator as Azure (its own test CA; TLS stays verified),
# and enforce mode for every task so the demo runs the whole response without approvals.
"$python" - "$tmp" "$boot" <<'PY'
import json, sys
tmp, boot = sys.argv[1], sys.argv[2]
ready = json.load(open(f"{tmp}/sim-ready.json"))
client_id, app = next(iter(ready["apps"].items()))
with open(f"{tmp}/client-secret", "w") as f:
    f.write(app["secret"])
kinds = ["delete_resource", "vm_reimage"]
config = {
    "kafka": {"bootstrap.servers": boot},
    "group_id": "quench-demo",
    "http": {"address": "127.0.0.1", "port": 0},
    "log_level": "info",
    "azure": {
        "credential": "secret", "tenant_id": ready["tenant_id"], "client_id": client_id,
        "client_secret_file": f"{tmp}/client-secret", "ca_file": ready["ca_file"],
        "endpoints": {"authority": ready["authority_url"].rstrip("/"), "arm": ready["arm_url"],
                      "graph": ready["graph_url"]},
    },
    "policy": {"dry_run": False, "modes": {k: "enforce" for k in kinds}},
    "contact": {"security_contact": "secops@contoso.com"},
}
json.dump(config, open(f"{tmp}/config.json", "w"), indent=1)
PY

say "starting the worker"
"$bin_dir/quench" run --config "$tmp/config.json" >"$tmp/quench.out" 2>"$tmp/quench.log" &
worker_pid=$!
# Give the worker up to 5 s to say it is ready. Producing earlier is safe too: the worker's
# contract is to read defender.alerts from the earliest offset when its group has none committed.
for ((i = 0; i < 50; i++)); do
    grep -qi 'ready' "$tmp/quench.log" 2>/dev/null && break
    running "$worker_pid" || break
    sleep 0.1
done

say "producing ${#inputs[@]} file(s) from ${data_dir#"$root"/} to defender.alerts"
"$python" "$helper" produce --bootstrap "$boot" --topic defender.alerts "${inputs[@]}"

say "waiting for the owner contact of ${inputs[0]#"$root"/}, then answering it"
"$python" "$helper" verdict --bootstrap "$boot" --alert "${inputs[0]}" --verdict unexpected \
    --timeout "$timeout_s" || fail "the worker asked no owner about ${inputs[0]}"

say "waiting for outcome events on quench.outcomes (up to ${timeout_s} s)"
events_rc=0
"$python" "$helper" timeline --bootstrap "$boot" --topic quench.outcomes \
    --timeout "$timeout_s" --quiet 6 --pid "$worker_pid" >"$tmp/timeline.txt" || events_rc=$?

say "timeline"
if [[ -s "$tmp/timeline.txt" ]]; then
    cat "$tmp/timeline.txt"
else
    echo "(no outcome events)"
fi

if ! running "$worker_pid"; then
    worker_rc=0
    wait "$worker_pid" || worker_rc=$?
    worker_pid=""
    echo "demo: the worker exited on its own (status $worker_rc) before it was asked to stop" >&2
    echo "demo: last lines of its log:" >&2
    tail -n 20 "$tmp/quench.log" >&2 || true
    exit 1
fi
say "stopping the worker (SIGTERM)"
stop "$worker_pid" quench 150
worker_pid=""
if ((stop_status != 0)); then
    echo "demo: the worker exited with status $stop_status after SIGTERM; its last log lines:" >&2
    tail -n 20 "$tmp/quench.log" >&2 || true
    exit 1
fi
if ((events_rc != 0)); then
    echo "demo: the worker published no outcome events; last lines of its log:" >&2
    tail -n 20 "$tmp/quench.log" >&2 || true
    exit 1
fi

say "stopping the Azure simulator and quench-devkafka"
stop "$sim_pid" azure-sim 50
sim_pid=""
stop "$devkafka_pid" quench-devkafka 50
devkafka_pid=""
say "done"
