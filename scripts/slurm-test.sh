#!/bin/bash
# slurm-test.sh [BIN]: the live Slurm test (run by `make test`).
#
# Starts a single-node Slurm cluster on this machine (scripts/slurm-cluster.sh: Debian's slurm-wlm and munge,
# installed when missing; state in a temporary folder), submits a small LPLD run on Fashion-MNIST with
# pipelines/slurm/submit.sh (recover and relabel as job arrays of 2 tasks, merged with cat), waits for it, and
# checks that the merged image set, the merged label stream and the student are the bytes of a single-process
# run. Then it submits the run again into a new folder, cancels one recover array task while the run is under
# way (what follows it is cancelled by its dependency), submits again, and checks the same bytes.
# Where Slurm cannot be started (not root and not installed, no munge), it says why and exits 0 without
# testing; LD_REQUIRE_SLURM=1 makes that a failure.
set -euo pipefail
bin=$(cd "${1:-.build/release}" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$bin:$PATH"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ld-slurm.XXXXXX")
cluster=$tmp/cluster
fail() { echo "slurm-test: $*" >&2; exit 1; }
cleanup() { bash "$root/scripts/slurm-cluster.sh" stop "$cluster" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
start=$(date +%s.%N)
elapsed() { awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }

set +e
bash "$root/scripts/slurm-cluster.sh" start "$cluster" 2> "$tmp/cluster.err"
status=$?
set -e
if [ $status -ne 0 ]; then
    reason=$(grep -o 'cannot start Slurm here: .*' "$tmp/cluster.err" | head -1)
    [ -n "${LD_REQUIRE_SLURM:-}" ] && fail "${reason:-$(tail -1 "$tmp/cluster.err")}"
    echo "slurm-test: SKIPPED, ${reason:-$(tail -1 "$tmp/cluster.err")}" >&2
    exit 0
fi
eval "$(bash "$root/scripts/slurm-cluster.sh" env "$cluster")"

# A small LPLD run: a width-8 teacher on 2,000 images, IPC 2, labels for 4 epochs pruned 2x, one thread per
# task (bit-identical whatever runs it).
args=(--limit 2000 --width 8 --teacher-epochs 2 --method lpld --ipc 2 --iterations 100 --epochs 4 --batch-size 10
      --ratio 2 --threads 1 --cpus 1)
sharded=(--class-shards 2 --epoch-shards 2)

# A stream's records as NDJSON without where they sit (file, stream, position): a cat of shards has one
# header per shard, the single run one.
records() {
    ld-prune --dump "$1" | grep -v -e '"type":"header"' -e '"type":"end"' | sed -E 's/"(record|stream)":[0-9]+,?//g; s/"source":"[^"]*",?//g'
}
same_as_reference() {
    local w=$1
    for f in syn.ldi labels.ldl student.ldm; do [ -s "$w/$f" ] || fail "$w/$f was not made"; done
    cmp -s <(records "$ref/syn.ldi") <(records "$w/syn.ldi") || fail "the merged image set of $w differs from the single-process run"
    cmp -s <(records "$ref/labels.ldl") <(records "$w/labels.ldl") || fail "the merged label stream of $w differs from the single-process run"
    cmp -s "$ref/student.ldm" "$w/student.ldm" || fail "the student of $w differs from the single-process run"
}
# Waits until none of the jobs is in the queue; prints each job's (and array task's) final state.
wait_jobs() {
    local ids=$1 deadline=$(($(date +%s) + 600))
    while [ -n "$(squeue -h -j "${ids// /,}" -o %i 2>/dev/null)" ]; do
        [ "$(date +%s)" -lt $deadline ] || fail "jobs $ids still queued after 600 s"
        sleep 1
    done
    for id in $ids; do
        scontrol show job -o "$id" | awk '{
            delete v
            for (i = 1; i <= NF; i++) { k = $i; sub(/=.*/, "", k); v[k] = substr($i, length(k) + 2) }
            id = ("ArrayTaskId" in v) ? v["ArrayJobId"] "_" v["ArrayTaskId"] : v["JobId"]
            print v["JobName"], id, v["JobState"], v["RunTime"]
        }'
    done
}

ref=$tmp/reference
bash "$root/pipelines/slurm/submit.sh" --local --work "$ref" "${args[@]}" --class-shards 1 --epoch-shards 1 2> "$tmp/reference.log" \
    || fail "the single-process run failed: $(tail -3 "$tmp/reference.log")"
echo "slurm-test: single-process run in $(elapsed) s" >&2

# 1. The whole run as dependent jobs and arrays.
t0=$(date +%s)
echo "+ pipelines/slurm/submit.sh --work run ${args[*]} ${sharded[*]}" >&2
jobs=$(bash "$root/pipelines/slurm/submit.sh" --work "$tmp/run" "${args[@]}" "${sharded[@]}")
echo "+ squeue -j ${jobs// /,}" >&2
states=$(wait_jobs "$jobs")
echo "$states" | sed 's/^/slurm-test:   /' >&2
echo "$states" | grep -qv ' COMPLETED ' && fail "not every job completed: $states"
same_as_reference "$tmp/run"
echo "slurm-test: Slurm run (6 jobs, 2 arrays of 2) in $(($(date +%s) - t0)) s: merged images, labels and student equal the single-process run" >&2

# 2. A cancelled array task: submit, cancel recover task 1 while the run is under way, submit again.
t0=$(date +%s)
jobs=$(bash "$root/pipelines/slurm/submit.sh" --work "$tmp/rerun" "${args[@]}" "${sharded[@]}")
recover=$(echo "$jobs" | cut -d' ' -f2)
echo "+ scancel ${recover}_1" >&2
scancel "${recover}_1"
states=$(wait_jobs "$jobs")
echo "$states" | sed 's/^/slurm-test:   /' >&2
echo "$states" | grep -q "^ld-recover ${recover}_1 COMPLETED" && fail "recover task 1 ran although cancelled"
[ -e "$tmp/rerun/images/part-1.ldi" ] && fail "recover task 1 wrote its part although cancelled"
[ -e "$tmp/rerun/syn.ldi" ] && fail "the image set was merged although a recover task was cancelled"
echo "+ pipelines/slurm/submit.sh --work rerun ... (again)" >&2
jobs=$(bash "$root/pipelines/slurm/submit.sh" --work "$tmp/rerun" "${args[@]}" "${sharded[@]}")
states=$(wait_jobs "$jobs")
echo "$states" | grep -qv ' COMPLETED ' && fail "not every resubmitted job completed: $states"
grep -q "exists, skipped" "$tmp/rerun/logs/ld-teacher-${jobs%% *}_4294967294.out" || fail "the resubmitted teacher stage did not skip its finished output"
same_as_reference "$tmp/rerun"
echo "slurm-test: cancelled task resubmitted in $(($(date +%s) - t0)) s: the same bytes" >&2
echo "slurm-test: live Slurm test passed in $(elapsed) s" >&2
