#!/bin/bash
# stage.sh LOG NAME COMMAND: run one pipeline stage and append "NAME<TAB>seconds<TAB>COMMAND" to LOG.
#
# COMMAND is one shell string (pipes and redirections included) run under `bash -o pipefail`, so a failing
# tool anywhere in a pipe fails the stage and make removes the stage's target (.DELETE_ON_ERROR).
# The log is what RESULTS.md quotes for the commands and wall time of each stage.
set -euo pipefail
log=$1 name=$2 cmd=$3
start=$EPOCHREALTIME
bash -o pipefail -c "$cmd"
end=$EPOCHREALTIME
seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
printf '%s\t%s\t%s\n' "$name" "$seconds" "$cmd" >> "$log"
