#!/bin/sh
# Writes Sources/CBuildInfo/revision.h with the git revision of the work tree (12 hex digits, "-dirty" with
# uncommitted changes), which --version prints. Rewrites the file only when the revision changed, so an
# unchanged tree rebuilds nothing. Outside a git checkout the tools say "unknown".
set -eu
cd "$(dirname "$0")/.."
rev=$(git rev-parse --short=12 HEAD 2>/dev/null) || exit 0
git diff --quiet HEAD -- . 2>/dev/null || rev="$rev-dirty"
line="#define LD_REVISION \"$rev\""
file=Sources/CBuildInfo/revision.h
[ -f "$file" ] && [ "$(cat "$file")" = "$line" ] && exit 0
echo "$line" > "$file"
