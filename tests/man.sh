#!/usr/bin/env bash
# tests/man.sh - the manual pages in contrib/man format without a warning
# and still describe what the code has.
#
# For each page:
#   - groff -ww -z -man (every warning on, no output) prints nothing;
#   - mandoc -T lint too, when mandoc is installed (it is not needed);
#   - man -l renders it (man-db, as a reader would) with nothing on stderr
#     and the page's NAME section in the text.
# And against the sources, so that a new key, control file or command
# cannot go undocumented:
#   - t4dxfs.8 names every configuration key of core/config.c (as
#     section.key) and every control file of fs/ctl.c;
#   - t4dx.1 names every command that `t4dx help` lists (when the tool is
#     built: T4DX_BUILDDIR).
#
# usage: bash tests/man.sh [SRCDIR]      exit 0 fine, 1 problems
set -uo pipefail

srcdir=${1:-${T4DX_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}}
builddir=${T4DX_BUILDDIR:-$srcdir}
mandir=$srcdir/contrib/man
pages=(t4dx.1 t4dx-files.5 t4dxfs.8)
status=0

fail() {
	echo "FAIL: $*"
	status=1
}

if ! command -v groff >/dev/null; then
	echo "FAIL: groff is missing: install the Debian package groff-base"
	exit 1
fi

for p in "${pages[@]}"; do
	f=$mandir/$p
	if [[ ! -f $f ]]; then
		fail "$f is missing"
		continue
	fi
	out=$(LC_ALL=C.UTF-8 groff -ww -z -man -- "$f" 2>&1)
	if [[ -n $out ]]; then
		fail "groff -ww -z -man $p warns:"
		printf '%s\n' "$out" | head -n 20 | sed 's/^/  /'
	else
		echo "ok: groff -ww -z -man $p is silent"
	fi
	if command -v mandoc >/dev/null; then
		out=$(mandoc -T lint -W warning -- "$f" 2>&1)
		if [[ -n $out ]]; then
			fail "mandoc -T lint $p warns:"
			printf '%s\n' "$out" | head -n 20 | sed 's/^/  /'
		else
			echo "ok: mandoc -T lint $p is silent"
		fi
	fi
	if command -v man >/dev/null; then
		out=$(mktemp "${TMPDIR:-/tmp}/t4dx-man.XXXXXX")
		err=$(MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -l -- "$f" 2>&1 >"$out")
		text=$(cat "$out")
		rm -f "$out"
		name=${p%.*}
		if [[ -n $err ]]; then
			fail "man -l $p says: $(printf '%s' "$err" | head -n 5)"
		elif ! grep -q "^ *$name - " <<<"$text"; then
			fail "man -l $p renders no NAME line \"$name - ...\""
		else
			echo "ok: man -l $p renders ($(wc -l <<<"$text") lines)"
		fi
	fi
done

# The text of a page as a reader sees it: escapes and fonts gone.
plain() {
	LC_ALL=C.UTF-8 groff -man -T utf8 -P -c -P -b -P -u -rLL=200n -- "$1" 2>/dev/null |
		sed 's/\xe2\x80\x90/-/g'
}

# Every section.key of the configuration table in core/config.c.
t4dxfs8=$(plain "$mandir/t4dxfs.8")
keys=$(sed -nE 's/^[[:space:]]*(INT|NUM|STR)\([0-9]+, *([a-z_]+), *([a-z_]+),.*/\2.\3/p' \
	"$srcdir/core/config.c")
nkeys=$(wc -w <<<"$keys")
if ((nkeys < 20)); then
	fail "found only $nkeys configuration keys in core/config.c: has its table changed shape?"
fi
missing=()
for k in $keys; do
	grep -qF -- "$k" <<<"$t4dxfs8" || missing+=("$k")
done
if ((${#missing[@]})); then
	fail "t4dxfs.8 does not describe the configuration keys: ${missing[*]}"
else
	echo "ok: t4dxfs.8 describes all $nkeys configuration keys of core/config.c"
fi

# Every control file of fs/ctl.c's table, as a tagged paragraph of its own.
ctl=$(sed -nE 's/^[[:space:]]*\{ "([a-z]+)", INO_CTL_FIRST.*/\1/p' "$srcdir/fs/ctl.c")
nctl=$(wc -w <<<"$ctl")
((nctl >= 5)) || fail "found only $nctl control files in fs/ctl.c: has its table changed shape?"
missing=()
for c in $ctl; do
	grep -qE "^ +$c( |\$)" <<<"$t4dxfs8" || missing+=("$c")
done
if ((${#missing[@]})); then
	fail "t4dxfs.8 does not describe the control files: ${missing[*]}"
else
	echo "ok: t4dxfs.8 describes all $nctl control files of fs/ctl.c"
fi

# Every command `t4dx help` lists (a word indented by 1 to 4 spaces at the
# start of a line; an example line "  t4dx ..." is not a command).
if [[ -x $builddir/tools/t4dx ]]; then
	t4dx1=$(plain "$mandir/t4dx.1")
	cmds=$("$builddir/tools/t4dx" help 2>&1 |
		sed -nE 's/^ {1,4}([a-z][a-z-]*)( .*)?$/\1/p' | grep -vx t4dx | sort -u)
	missing=()
	for c in $cmds; do
		grep -qE "^ +t4dx $c( |\$)" <<<"$t4dx1" || missing+=("$c")
	done
	if [[ -z $cmds ]]; then
		fail "t4dx help lists no command"
	elif ((${#missing[@]})); then
		fail "t4dx.1's synopsis lacks the commands: ${missing[*]}"
	else
		echo "ok: t4dx.1 shows every command of t4dx help:" $cmds
	fi
else
	echo "# tools/t4dx is not built: its commands are not compared with t4dx.1"
fi

exit $status
