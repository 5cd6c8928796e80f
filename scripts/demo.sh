#!/bin/bash
# make demo: a small end-to-end distillation on Fashion-MNIST, in a few minutes on two cores.
#
#   squeeze   a small ConvNet teacher (width 32, 2 epochs) with per-class BN statistics
#   recover   LPLD: 2 images per class, 300 iterations
#   relabel   FKD-style soft labels for 100 epochs, pruned 10x on the way, straight into the student
#   train     a width-32 ConvNet student on the 20 images, and the same recipe on 20 random real images
#
# The numbers are small-scale (IPC 2, short runs); pipelines/ holds the full experiments.
set -euo pipefail
bin=${1:-.build/release}
export PATH="$PWD/$bin:$PATH"
out=${DEMO_DIR:-demo}
rm -rf "$out"
mkdir -p "$out"
say() { printf '\n== %s\n' "$*" >&2; }
top1() { tail -n 1 "$1" | sed -n 's/.*"best_top1":\([0-9.]*\).*/\1/p'; }

say "ld-squeeze: teacher (convnet width 32, 2 epochs on fmnist:train)"
ld-squeeze --data fmnist:train --val fmnist:test --width 32 --epochs 2 --class-stats \
    -o "$out/teacher.ldm" --metrics "$out/squeeze.ndjson"
teacher=$(tail -n 1 "$out/squeeze.ndjson" | sed -n 's/.*"val_top1":\([0-9.]*\).*/\1/p')

say "ld-recover: LPLD, IPC 2, 300 iterations -> $out/syn/"
ld-recover --teacher "$out/teacher.ldm" --method lpld --ipc 2 --iterations 300 --png "$out/syn" > "$out/recover.ndjson"

say "ld-relabel | ld-prune --ratio 10 | ld-train (100 epochs)"
ld-relabel --teacher "$out/teacher.ldm" --data "$out/syn" --epochs 100 --batch-size 10 --seed 42 \
  | ld-prune --ratio 10 \
  | ld-train --data "$out/syn" --labels - --val fmnist:test --width 32 --eval-every 50 > "$out/student.ndjson"

say "the same student recipe on a random real subset (IPC 2) with the teacher online"
ld-prune --data fmnist:train --select random --ipc 2 --seed 0 -o "$out/random.ldi"
ld-train --data "$out/random.ldi" --teacher "$out/teacher.ldm" --val fmnist:test --width 32 \
    --epochs 100 --batch-size 10 --eval-every 50 > "$out/random.ndjson"

say "ld-train --hard on the distilled images"
ld-train --data "$out/syn" --hard --val fmnist:test --width 32 --epochs 100 --eval-every 50 > "$out/hard.ndjson"

labels=$(ld-relabel --teacher "$out/teacher.ldm" --data "$out/syn" --epochs 100 --batch-size 10 --seed 42 -q | ld-prune --ratio 10 -q | wc -c)
images=$(cat "$out"/syn/*/*.png | wc -c)
cat >&2 <<REPORT

Fashion-MNIST, IPC 2 (20 images), ConvNet width 32 (short demo runs; see pipelines/ for the real tables)
  teacher (2 epochs)                         $teacher% top-1 on fmnist:test
  lpld images, soft labels pruned 10x        $(top1 "$out/student.ndjson")%
  random real images, online teacher         $(top1 "$out/random.ndjson")%
  lpld images, hard labels                   $(top1 "$out/hard.ndjson")%
  storage: images $images bytes (PNG), labels $labels bytes (10x pruned)
  outputs in $out/: teacher.ldm, syn/ (PNG), *.ndjson
REPORT
