#!/bin/bash
# smoke.sh [BIN]: every tool in real pipes on a small slice of Fashion-MNIST, in a few seconds.
#
# The same stages as the tables (squeeze, scores, recover in shards, relabel | prune | train, subsets,
# online and hard students) at toy sizes: 2 classes of synthetic images at IPC 2, a handful of iterations
# and epochs. It checks that the stages run and chain, not accuracy. `make test` runs it.
set -euo pipefail
bin=$(cd "${1:-../.build/release}" && pwd)
export PATH="$bin:$PATH"
dir=$(mktemp -d "${TMPDIR:-/tmp}/ld-smoke.XXXXXX")
trap 'rm -rf "$dir"' EXIT
cd "$dir"
T="--threads 1 -q"
fail() { echo "smoke: $*" >&2; exit 1; }

# 40 real images per class, a width-8 teacher with class statistics and training-dynamics scores.
ld-prune --data fmnist:train --select random --ipc 40 --seed 1 -o real.ldi $T
ld-squeeze --data real.ldi --val fmnist:test --val-limit 500 --width 8 --epochs 2 --class-stats \
    --scores scores.lds -o teacher.ldm --metrics squeeze.ndjson $T

# LPLD images (IPC 2), made as two class shards in parallel (xargs -P 2) into one folder, then
# the whole command over the same folder, which only writes the manifest; it must equal one whole run.
recover="ld-recover --teacher teacher.ldm --method lpld --ipc 2 --iterations 5 $T"
printf '%s\n' 0:5 5:10 | xargs -P 2 -I{} sh -c "$recover --classes {} --png syn > /dev/null"
$recover --classes 0:10 --png syn > /dev/null
$recover --classes 0:10 --png syn-whole > /dev/null
diff -r -x manifest.json syn syn-whole > /dev/null || fail "two recover shards under xargs -P 2 differ from the whole run"
# The same shards as image streams, merged with cat, hold the same images as the whole run's stream.
printf '%s\n' 0:5 5:10 | xargs -P 2 -I{} sh -c "$recover --classes {} -o part-\$(echo {} | tr : -).ldi > /dev/null"
$recover --classes 0:10 -o whole.ldi > /dev/null
cat part-0-5.ldi part-5-10.ldi > merged.ldi
ld-train --data merged.ldi --hard --val fmnist:test --width 8 --epochs 1 $T -o merged.ldm > /dev/null
ld-train --data whole.ldi --hard --val fmnist:test --width 8 --epochs 1 $T -o whole.ldm > /dev/null
cmp -s merged.ldm whole.ldm || fail "a student trained on cat-merged recover shards differs from one trained on the whole run"

# FKD-style labels pruned on the way into the student.
ld-relabel --teacher teacher.ldm --data syn --epochs 4 --batch-size 2 $T \
  | ld-prune --ratio 2 -q \
  | ld-train --data syn --labels - --width 8 --val fmnist:test --eval-every 0 $T > pipe.ndjson
grep -q '"summary":true' pipe.ndjson || fail "relabel | prune | train wrote no summary"

# A scored subset under both RethinkDC protocols.
ld-prune --data real.ldi --scores scores.lds --select el2n --keep easy --ipc 2 --png subset $T
ld-train --data subset --teacher teacher.ldm --recipe rethinkdc-soft --width 8 --epochs 3 --val fmnist:test $T > soft.ndjson
ld-train --data subset --hard --recipe rethinkdc-hard --width 8 --epochs 3 --val fmnist:test $T > hard.ndjson
grep -q '"summary":true' soft.ndjson && grep -q '"summary":true' hard.ndjson || fail "a subset student wrote no summary"

echo "pipelines smoke: squeeze, scores, recover shards (xargs -P 2 == whole run), relabel | prune | train, subsets: ok" >&2
