#!/bin/bash
# beyond.sh WORK [PLOT.svg]: the markdown section of `make -C pipelines beyond` (RESULTS.md's "Beyond the
# seeds") on stdout, and its accuracy-against-storage plot (plot.awk; labels batch 50, mean over the seeds).
#
# Reads WORK/beyond/*.ndjson (one student per file: SET-ipcK-sS-bB-rR, SET-ipcK-sS-hard, SET-ipcK-sS-noaug-r1),
# the PNG bytes of each set and the teacher's metrics. Every figure is a mean over the seeds with the population
# standard deviation and the number of seeds, n. DD-Ranking's scores are computed per seed, then averaged:
#   HLR = teacher top-1 - the set's hard-label student        (the full data's hard-label accuracy: the teacher)
#   IOR = the set's stored-label student - the random subset's, same seed, labels batch 50 at 1x
#   LRS = 100 (e^a - e^-1) / (e - e^-1), a = (IOR - HLR) / 2
#   ARS = 100 (e^b - e^-1) / (e - e^-1), b = (IOR + IOR without augmentation) / 2
# with accuracies as fractions (so a, b lie in [-1, 1] and the scores in [0, 100]), lambda = 0.5.
set -euo pipefail
W=${1:-work} svg=${2:-beyond.svg}
rows=$(mktemp); trap 'rm -f "$rows"' EXIT

field() { [ -s "$1" ] && tail -n 1 "$1" | sed -n "s/.*\"$2\":\\([-0-9.e]*\\).*/\\1/p" || true; }
png_bytes() { [ -d "$1" ] && find -L "$1" -name '*.png' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }' || true; }
teacher=$(sed -n 's/.*"val_top1":\([0-9.]*\).*/\1/p' "$W/teacher.ndjson" 2>/dev/null | tail -n 1)

{
  for f in "$W"/beyond/*.ndjson; do
    [ -e "$f" ] || continue
    b=$(basename "$f" .ndjson)
    IFS=- read -r m k s rest <<< "$b"
    top1=$(field "$f" last_top1) bytes=$(png_bytes "$W/b-set-$m-ipc${k#ipc}-$s")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "${k#ipc}" "${s#s}" "$rest" "$top1" "$bytes"
    case $rest in
      b50-r*) printf 'lpld\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n' "$m" "${k#ipc}" "${rest#b50-r}" "${s#s}" "$top1" \
                "$(field "$f" label_bytes)" "$bytes" >> "$rows" ;;
      hard) printf 'rethinkdc\t%s\t%s\thard\t%s\t%s\t0\t%s\t\n' "$m" "${k#ipc}" "${s#s}" "$top1" "$bytes" >> "$rows" ;;
    esac
  done
} | awk -F'\t' -v teacher="${teacher:-0}" '
function mean(key,   i, t) { t = 0; for (i = 1; i <= n[key]; i++) t += v[key, i]; return t / n[key] }
function sd(key,   i, m, t) { m = mean(key); t = 0; for (i = 1; i <= n[key]; i++) t += (v[key, i] - m) ^ 2; return sqrt(t / n[key]) }
function cell(key) { return (key in n) ? sprintf("%.2f +- %.2f (%d)", mean(key), sd(key), n[key]) : "-" }
function add(key, x) { n[key]++; v[key, n[key]] = x }
function score(x) { return 100 * (exp(x) - exp(-1)) / (exp(1) - exp(-1)) }
$5 != "" {
  top[$1, $2, $3, $4] = $5; add($1 SUBSEP $2 SUBSEP $4, $5)
  if ($6 != "") bytes[$1, $2, $3] = $6
  sets[$1] = 1; ipcs[$2] = 1; seeds[$3] = 1
}
END {
  no = split("random sre2l cda lpld edc edcens rded", order, " ")
  name["random"] = "random real subset"; name["lpld"] = "lpld (noise)"; name["sre2l"] = "sre2l (noise)"; name["cda"] = "cda (noise)"; name["edc"] = "lpld from real images (EDC init)"
  name["edcens"] = "the same, two teachers"
  name["rded"] = "rded (F = 1)"
  print "| set | IPC | labels batch | R=1 | R=40 | hard labels | images (PNG bytes, mean) |"
  print "|---|---|---|---|---|---|---|"
  nb = split("50 10 5", batches, " ")
  for (k = 10; k <= 50; k += 40) for (j = 1; j <= nb; j++) for (o = 1; o <= no; o++) {
    m = order[o]; b = batches[j]
    if (!((m, k, "b" b "-r1") in n)) continue
    tb = 0; c = 0
    for (s in seeds) if ((m, k, s) in bytes) { tb += bytes[m, k, s]; c++ }
    printf "| %s | %d | %d | %s | %s | %s | %s |\n", name[m], k, b, cell(m SUBSEP k SUBSEP "b" b "-r1"),
      cell(m SUBSEP k SUBSEP "b" b "-r40"), b == 50 ? cell(m SUBSEP k SUBSEP "hard") : "", c ? sprintf("%d", tb / c) : "-"
  }
  print ""
  print "DD-Ranking'"'"'s scores, from the cells above (labels batch 50), per seed against that seed'"'"'s random subset, then"
  print "mean +- std (n): HLR = the teacher'"'"'s " teacher "% (the full data under hard labels) - the hard-label column;"
  print "IOR = the R=1 column - the random subset'"'"'s; LRS = 100 (e^a - e^-1) / (e - e^-1), a = (IOR - HLR) / 2; ARS the"
  print "same with b = (IOR + the IOR of students on labels without augmentation) / 2 (`ld-relabel --mix none"
  print "--crop-scale 1,1`, IPC 10 only). Accuracies enter as fractions, as in the DD-Ranking paper, so both scores"
  print "lie in [0, 100]; higher is better. The random subset'"'"'s IORs are 0 by construction."
  print ""
  print "| set | IPC | HLR (points) | IOR (points) | LRS | IOR without augmentation | ARS |"
  print "|---|---|---|---|---|---|---|"
  for (k = 10; k <= 50; k += 40) for (o = 1; o <= no; o++) {
    m = order[o]
    if (!((m, k, "b50-r1") in n)) continue
    for (s in seeds) {
      if (!((m, k, s, "hard") in top) || !((m, k, s, "b50-r1") in top) || !(("random", k, s, "b50-r1") in top)) continue
      hlr = teacher - top[m, k, s, "hard"]; ior = top[m, k, s, "b50-r1"] - top["random", k, s, "b50-r1"]
      add("hlr" SUBSEP m SUBSEP k, hlr); add("ior" SUBSEP m SUBSEP k, ior)
      add("lrs" SUBSEP m SUBSEP k, score((ior - hlr) / 200))
      if ((m, k, s, "noaug-r1") in top && ("random", k, s, "noaug-r1") in top) {
        io0 = top[m, k, s, "noaug-r1"] - top["random", k, s, "noaug-r1"]
        add("io0" SUBSEP m SUBSEP k, io0); add("ars" SUBSEP m SUBSEP k, score((ior + io0) / 200))
      }
    }
    printf "| %s | %d | %s | %s | %s | %s | %s |\n", name[m], k, cell("hlr" SUBSEP m SUBSEP k), cell("ior" SUBSEP m SUBSEP k),
      cell("lrs" SUBSEP m SUBSEP k), cell("io0" SUBSEP m SUBSEP k), cell("ars" SUBSEP m SUBSEP k)
  }
}'
awk -F'\t' -v svg="$svg" -v title="Beyond the seeds: top-1 against storage (labels batch 50, seeds 1-3)" \
  -f "$(dirname "$0")/plot.awk" "$rows"

# Wall time per kind of stage (median over the sets and seeds), with one command of each kind.
if [ -s "$W/stages.tsv" ]; then
  echo
  echo "Wall time per kind of stage (median and count over the sets and seeds; two to four stages shared the 2"
  echo "cores, so these are upper bounds), with one command of each kind:"
  echo
  echo "| stage | runs | median wall s | command (one of them) |"
  echo "|---|---|---|---|"
  awk -F'\t' '$1 ~ /^(b-set|b-labels|beyond)-|^teacher2$/ { seen[$1] = $0 } END { for (k in seen) print seen[k] }' "$W/stages.tsv" \
    | awk -F'\t' -v w="$W/" '{
        k = $1
        if (k ~ /^b-set-/) { sub(/-s[0-9]+$/, "", k); sub(/^b-set-/, "set ", k) }
        else if (k ~ /^b-labels-/) { sub(/^b-labels-[a-z0-9]+-/, "labels ", k); sub(/-s[0-9]+/, "", k) }
        else if (k ~ /^beyond-/) { sub(/^beyond-[a-z0-9]+-/, "student ", k); sub(/-s[0-9]+/, "", k) }
        n[k]++; t[k, n[k]] = $2; if (!(k in cmd)) cmd[k] = $3
      } END {
        for (k in n) {
          m = n[k]; for (i = 1; i <= m; i++) a[i] = t[k, i]
          for (i = 2; i <= m; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
          med = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
          c = cmd[k]; gsub(/\|/, "\\|", c); while ((i = index(c, w)) > 0) c = substr(c, 1, i - 1) "work/" substr(c, i + length(w))
          printf "| %s | %d | %.1f | `%s` |\n", k, m, med, c
        }
      }' | sort
fi
