#!/bin/bash
# submit.sh [options]: a whole distillation run (SRe2L, CDA or LPLD) as dependent Slurm jobs, one command.
#
#   teacher -> recover (job array over class shards) -> merge-images -> relabel (job array over epoch
#   shards) -> merge-labels -> student (ld-prune | ld-train), chained with --dependency=afterok and
#   --kill-on-invalid-dep=yes: a stage that fails or is cancelled cancels what depends on it.
#
# Every stage skips itself when its output exists, and outputs are written atomically: after a failure
# or a cancelled task, run the same submit.sh again (or `sbatch --array=I stage.sbatch recover` for one task):
# only what is missing is made, and the result is the same bytes.
#
# Options (defaults in brackets):
#   --work DIR            where everything goes [ld-run]
#   --data SET --val SET  training and validation sets [fmnist:train, fmnist:test]
#   --limit N             teacher trained on the first N images only
#   --method M            sre2l | cda | lpld [lpld]
#   --ipc N               images per class [10]
#   --class-shards S      recover array size [5]: LPLD's shards are ranges of classes (its batches are the
#                         images of one class), SRe2L's and CDA's ranges of IPC slots (a batch holds one
#                         image of every class)
#   --epoch-shards R      relabel array size [3]
#   --cpus C              --cpus-per-task of the compute stages [8]; the tools use every CPU given
#   --threads T           engine threads [0 = the task's CPUs]; give 1 for bit-identical runs anywhere
#   --width W --teacher-epochs E --iterations I --epochs E --batch-size B --ratio R --seed S
#                         model width [64], teacher epochs [12], recover iterations [1000], label and
#                         student epochs [300], relabel batch [50], label pruning ratio [1], seed [0]
#   --bin DIR             where the ld tools are [on PATH]
#   --sbatch "ARGS"       extra sbatch arguments for every job (partition, account, time)
#   --local               run the stages here, one after the other, without Slurm (same commands, same bytes)
#
# Prints the job ids (teacher recover merge-images relabel merge-labels student) on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=ld-run; local=0; extra=""
export LD_DATA=fmnist:train LD_VAL=fmnist:test LD_LIMIT="" LD_METHOD=lpld LD_IPC=10 LD_CLASS_SHARDS=5 LD_EPOCH_SHARDS=3
export LD_WIDTH=64 LD_TEACHER_EPOCHS=12 LD_ITERATIONS=1000 LD_EPOCHS=300 LD_BATCH=50 LD_RATIO=1 LD_SEED=0 LD_THREADS=0
cpus=8
while [ $# -gt 0 ]; do
    case $1 in
    --work) work=$2 ;;
    --data) LD_DATA=$2 ;;
    --val) LD_VAL=$2 ;;
    --limit) LD_LIMIT=$2 ;;
    --method) LD_METHOD=$2 ;;
    --ipc) LD_IPC=$2 ;;
    --class-shards) LD_CLASS_SHARDS=$2 ;;
    --epoch-shards) LD_EPOCH_SHARDS=$2 ;;
    --cpus) cpus=$2 ;;
    --threads) LD_THREADS=$2 ;;
    --width) LD_WIDTH=$2 ;;
    --teacher-epochs) LD_TEACHER_EPOCHS=$2 ;;
    --iterations) LD_ITERATIONS=$2 ;;
    --epochs) LD_EPOCHS=$2 ;;
    --batch-size) LD_BATCH=$2 ;;
    --ratio) LD_RATIO=$2 ;;
    --seed) LD_SEED=$2 ;;
    --bin) PATH="$(cd "$2" && pwd):$PATH" ;;
    --sbatch) extra=$2 ;;
    --local) local=1; shift; continue ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "submit.sh: unknown option $1 (see --help)" >&2; exit 64 ;;
    esac
    [ $# -ge 2 ] || { echo "submit.sh: $1 needs a value" >&2; exit 64; }
    shift 2
done
case $LD_METHOD in sre2l|cda|lpld) ;; *) echo "submit.sh: --method $LD_METHOD: expected sre2l, cda or lpld" >&2; exit 64 ;; esac
command -v ld-recover >/dev/null || { echo "submit.sh: the ld tools are not on PATH (give --bin DIR)" >&2; exit 64; }
mkdir -p "$work/logs"
export LD_WORK
LD_WORK=$(cd "$work" && pwd)
export PATH

if [ $local = 1 ]; then
    run() { "$here/stage.sbatch" "$@"; }
    run teacher
    for ((i = 0; i < LD_CLASS_SHARDS; i++)); do SLURM_ARRAY_TASK_ID=$i run recover; done
    run merge-images
    for ((i = 0; i < LD_EPOCH_SHARDS; i++)); do SLURM_ARRAY_TASK_ID=$i run relabel; done
    run merge-labels
    run student
    exit 0
fi

command -v sbatch >/dev/null || { echo "submit.sh: sbatch not found (no Slurm here; --local runs the stages in this shell)" >&2; exit 1; }
# shellcheck disable=SC2086
submit() {  # submit NAME CPUS DEPENDENCY [sbatch args] -- STAGE
    local name=$1 c=$2 dep=$3; shift 3
    sbatch --parsable --export=ALL --job-name="ld-$name" --cpus-per-task="$c" \
        --output="$LD_WORK/logs/%x-%A_%a.out" ${dep:+--dependency=afterok:$dep --kill-on-invalid-dep=yes} \
        $extra "$@" | cut -d';' -f1
}
t=$(submit teacher "$cpus" "" "$here/stage.sbatch" teacher)
r=$(submit recover "$cpus" "$t" --array=0-$((LD_CLASS_SHARDS - 1)) "$here/stage.sbatch" recover)
m=$(submit merge-images 1 "$r" "$here/stage.sbatch" merge-images)
l=$(submit relabel "$cpus" "$m" --array=0-$((LD_EPOCH_SHARDS - 1)) "$here/stage.sbatch" relabel)
n=$(submit merge-labels 1 "$l" "$here/stage.sbatch" merge-labels)
s=$(submit student "$cpus" "$n" "$here/stage.sbatch" student)
echo "$t $r $m $l $n $s"
