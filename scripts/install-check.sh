#!/bin/bash
# install-check.sh: `make install` into a temporary DESTDIR installs the five tools, their man pages and
# bash/zsh/fish completions; the installed tools run from another folder; `make uninstall` removes exactly
# what was installed. `make test` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=$(mktemp -d "${TMPDIR:-/tmp}/ld-install.XXXXXX")
trap 'rm -rf "$dest"' EXIT
fail() { echo "install check: $*" >&2; exit 1; }
make -s install DESTDIR="$dest" PREFIX=/usr > /dev/null
tools="ld-squeeze ld-recover ld-relabel ld-prune ld-train"
count=$(find "$dest" -type f | wc -l)
[ "$count" -eq 25 ] || fail "expected 25 installed files (5 tools x binary, man page, 3 completions), found $count"
for t in $tools; do
    (cd / && "$dest/usr/bin/$t" --version) | grep -q "revision" || fail "$t --version names no revision"
    grep -q "^\.Dt $(echo "$t" | tr a-z A-Z) 1" "$dest/usr/share/man/man1/$t.1" || fail "$t.1 is not a man page"
    grep -q -- "--data\|--teacher\|--ratio" "$dest/usr/share/bash-completion/completions/$t" || fail "$t's bash completion lacks its flags"
    [ -s "$dest/usr/share/zsh/site-functions/_$t" ] && [ -s "$dest/usr/share/fish/vendor_completions.d/$t.fish" ] \
        || fail "$t: zsh or fish completion missing"
done
# bash completes an installed tool's flags: `ld-train --va<TAB>` (bash calls the function with the command,
# the current word and the previous one)
out=$(bash -c "source '$dest/usr/share/bash-completion/completions/ld-train'
COMP_WORDS=(ld-train --va); COMP_CWORD=1; COMP_LINE='ld-train --va'; COMP_POINT=\${#COMP_LINE}
_ld-train ld-train --va ld-train 2>/dev/null; printf '%s\n' \"\${COMPREPLY[@]}\"")
[ "$out" = "--val" ] || fail "bash completion of 'ld-train --va<TAB>' offered: $out"
make -s uninstall DESTDIR="$dest" PREFIX=/usr > /dev/null
left=$(find "$dest" -type f | wc -l)
[ "$left" -eq 0 ] || fail "make uninstall left $left files"
echo "install check: 25 files installed (tools, man pages, bash/zsh/fish completions), tools run from /, uninstall removes them: ok" >&2
