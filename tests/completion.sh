#!/usr/bin/env bash
# tests/completion.sh - the bash completions of contrib/bash-completion give
# what a user expects at <TAB>.
#
# Each case sources the completion in this bash, sets COMP_WORDS and
# COMP_CWORD as bash does for the command line (with bash's default
# COMP_WORDBREAKS, "config=FILE" is the three words config, = and FILE),
# calls the completion function and compares COMPREPLY with what is
# expected.  A completion that offers more or fewer words fails.
#
# usage: bash tests/completion.sh [SRCDIR]      exit 0 fine, 1 problems
set -uo pipefail

srcdir=${1:-${T4DX_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}}
status=0

# shellcheck source=../contrib/bash-completion/t4dx
source "$srcdir/contrib/bash-completion/t4dx" || exit 1
# shellcheck source=../contrib/bash-completion/t4dxfs
source "$srcdir/contrib/bash-completion/t4dxfs" || exit 1

# Outside a completion compopt fails with a message: quiet it here.
# shellcheck disable=SC2317  # called by the completion functions
compopt() { :; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/t4dx-completion.XXXXXX") || exit 1
trap 'rm -rf -- "$tmp"' EXIT
mkdir "$tmp/data" "$tmp/mnt" "$tmp/dir with space"
: >"$tmp/t4dx.json"
: >"$tmp/other.json"
cd "$tmp" || exit 1

# expect 'WANT...' WORD...: complete the last WORD (the cursor at its end)
# of the command line WORD...; WANT is the sorted completions, one a line.
expect() {
	local want=$1 got
	shift
	COMP_WORDS=("$@")
	COMP_CWORD=$(($# - 1))
	COMP_LINE="$*"
	COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	case $1 in
	t4dx) _t4dx ;;
	t4dxfs) _t4dxfs ;;
	esac
	got=$(printf '%s\n' "${COMPREPLY[@]}" | sort)
	want=$(printf '%s\n' "$want" | sort)
	[[ -n ${COMPREPLY[*]} ]] || got=
	if [[ $got == "$want" ]]; then
		echo "ok: $* <TAB> -> ${got//$'\n'/ }"
	else
		echo "FAIL: $* <TAB>"
		echo "  expected: ${want//$'\n'/ }"
		echo "  got:      ${got//$'\n'/ }"
		status=1
	fi
}

# t4dx: commands, options, arguments by position
expect 'compact' t4dx co
expect 'wal-dump' t4dx w
expect $'compact\ndump\nhelp\nls\nsearch\nstatus\nsync\nverify\nversion\nwal-dump' t4dx ''
expect $'--help\n--version' t4dx --
expect 'nrem' t4dx compact /mnt/x n
expect $'flush\nnrem\nprune\nrem' t4dx compact --json /mnt/x ''
expect 'prune' t4dx compact --no-progress /mnt/x p
expect $'--help\n--json\n-k' t4dx search -
expect '--force-readonly' t4dx verify --f
expect '--no-progress' t4dx verify --json --n
expect $'--progress' t4dx verify --json --pro
expect '--archive' t4dx wal-dump --a
expect $'-l' t4dx ls -l
expect "$tmp/data" t4dx verify "$tmp/da"
expect "$tmp/dir with space" t4dx status "$tmp/dir"
expect "$tmp/mnt" t4dx compact "$tmp/m"
# nothing after the last argument
expect '' t4dx compact /mnt/x nrem ''

# t4dxfs: options, -o values, config=FILE, directories
expect $'-f\n-o\n-h\n--help\n-V\n--version' t4dxfs -
expect $'--help\n--version' t4dxfs --
expect 'create' t4dxfs -o cr
expect 'allow_other,create' t4dxfs -o allow_other,cr
expect 'nosuid,config=' t4dxfs -o nosuid,con
expect $'nodev\nnoexec\nnoatime\nnosuid' t4dxfs -o no
expect "$tmp/t4dx.json" t4dxfs -o config = "$tmp/t4"
expect $'data\ndir with space\nmnt\nother.json\nt4dx.json' t4dxfs -o nosuid,config = ''
expect 'other.json' t4dxfs -o config = o
# the cursor right after '=': bash gives the word "=" itself
expect $'data\ndir with space\nmnt\nother.json\nt4dx.json' t4dxfs -o config =
expect "$tmp/data" t4dxfs "$tmp/da"
expect "$tmp/mnt" t4dxfs -f "$tmp/data" "$tmp/m"
# COMP_WORDBREAKS without '=': one word config=FILE
expect "config=$tmp/t4dx.json" t4dxfs -o "config=$tmp/t4"

# every command that the built t4dx lists in its help is offered (the
# same words as tests/man.sh looks for in t4dx.1)
builddir=${T4DX_BUILDDIR:-$srcdir}
if [[ -x $builddir/tools/t4dx ]]; then
	cmds=$("$builddir/tools/t4dx" help 2>&1 |
		sed -nE 's/^ {1,4}([a-z][a-z-]*)( .*)?$/\1/p' | grep -vx t4dx | sort -u)
	COMP_WORDS=(t4dx '')
	COMP_CWORD=1
	_t4dx
	missing=()
	for c in $cmds; do
		[[ " ${COMPREPLY[*]} " == *" $c "* ]] || missing+=("$c")
	done
	if [[ -z $cmds ]]; then
		echo "FAIL: t4dx help lists no command"
		status=1
	elif ((${#missing[@]})); then
		echo "FAIL: t4dx <TAB> does not offer these commands of t4dx help: ${missing[*]}"
		status=1
	else
		echo "ok: t4dx <TAB> offers every command of t4dx help:" $cmds
	fi
fi

exit $status
