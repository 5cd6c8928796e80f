#!/bin/bash
# shaped.sh tiny|imagenet WORKDIR: the whole method on a synthetic JPEG set in a real data set's layout,
# read as users point ld at the real one. Prints each stage's wall time, images/s and peak RSS as a table.
#
#   tiny      Tiny-ImageNet's layout (200 classes, 64 x 64, val/images + val_annotations.txt), ResNet-18 with
#             the small stem at 64 px, as the seeds' Tiny-ImageNet runs
#   imagenet  ImageNet's layout (10 classes of assorted sizes, a flat val folder + LOC_val_solution.csv),
#             ResNet-18 with the ImageNet stem at 224 px
#
# squeeze 1 epoch (RandomResizedCrop from the whole images, class statistics) -> recover IPC 1 -> relabel ->
# train. The recovery runs ITERATIONS (default 20) iterations and the student EPOCHS (default 10) epochs: a
# run of the layouts and of every stage, not of accuracy (the images are synthetic).
# Environment: BIN (the tools, default ../.build/release), THREADS (0: every core).
set -euo pipefail
kind=${1:?usage: shaped.sh tiny|imagenet WORKDIR} W=${2:?usage: shaped.sh tiny|imagenet WORKDIR}
here=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$here/../.build/release}
T=${THREADS:-0} IT=${ITERATIONS:-20} E=${EPOCHS:-10}
case $kind in
  tiny) size=64 stem=small classes=200 per=10 val="folder:$W/set/val" bs=64 ;;
  imagenet) size=224 stem=imagenet classes=10 per=60 val="list:$W/set/LOC_val_solution.csv:$W/set/val" bs=32 ;;
  *) echo "shaped.sh: tiny or imagenet, not '$kind'" >&2; exit 64 ;;
esac
mkdir -p "$W"
[ -d "$W/set/train" ] || "$BIN/ld-bench" makeset "$W/set" --layout "$kind" --classes $classes --per-class $per --val-per-class 2 >&2
train=$((classes * per))
printf 'stage\twall s\timages\timg/s\tpeak RSS MB\n'
stage() {   # stage NAME IMAGES COMMAND...: time one stage (GNU time's peak RSS); its stdout goes to NAME.out
  local name=$1 images=$2; shift 2
  /usr/bin/time -f '%e %M' -o "$W/$name.time" "$@" > "$W/$name.out"
  read -r wall kb < "$W/$name.time"
  awk -v n="$name" -v w="$wall" -v i="$images" -v k="$kb" 'BEGIN { printf "%s\t%.1f\t%d\t%.1f\t%.0f\n", n, w, i, i / w, k / 1000 }'
}
# squeeze: one training epoch, the validation pass and the class-statistics pass
stage squeeze $((train * 2 + classes * 2)) "$BIN/ld-squeeze" --data "folder:$W/set/train" --val "$val" --image-size $size \
  --model resnet18 --stem $stem --epochs 1 --batch-size $bs --augment rrc --class-stats --threads $T -q \
  -o "$W/teacher.ldm" --metrics "$W/squeeze.ndjson"
# recover: images x iterations
rm -rf "$W/syn"
stage recover $((classes * IT)) "$BIN/ld-recover" --teacher "$W/teacher.ldm" --method lpld --ipc 1 --iterations $IT \
  --png "$W/syn" --threads $T -q
stage relabel $((classes * E)) "$BIN/ld-relabel" --teacher "$W/teacher.ldm" --data "$W/syn" --epochs $E --batch-size 50 \
  --threads $T -q -o "$W/labels.ldl"
# train: the epochs over the distilled set and the final evaluation on the validation set
stage train $((classes * E + classes * 2)) "$BIN/ld-train" --labels "$W/labels.ldl" --data "$W/syn" --val "$val" \
  --model resnet18 --stem $stem --epochs $E --eval-every 0 --threads $T -q -o "$W/student.ldm"
