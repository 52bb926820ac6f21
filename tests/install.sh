#!/usr/bin/env bash
# tests/install.sh - `make install` puts every file where the configured
# directories say, and `make uninstall` takes them away again.
#
# Installs the build tree T4DX_BUILDDIR into a private staging directory
# (make install DESTDIR=...), never into the real prefix, then checks:
#   - t4dxfs and t4dx in bindir, executable, and they run (--version);
#   - t4dx.1, t4dx-files.5 and t4dxfs.8 in man1, man5 and man8, where
#     man(1) finds them by name;
#   - the completions t4dx and t4dxfs in the bash-completion directory,
#     and sourcing them registers a completion for each command;
#   - nothing is installed outside the prefix;
#   - make uninstall leaves no file behind.
#
# usage: bash tests/install.sh      exit 0 fine, 1 problems, 77 skip
set -uo pipefail

builddir=${T4DX_BUILDDIR:-$(cd "$(dirname "$0")/.." && pwd)}
if [[ ! -f $builddir/Makefile ]]; then
	echo "SKIP: $builddir is not a configured build tree (set T4DX_BUILDDIR)"
	exit 77
fi

status=0
fail() {
	echo "FAIL: $*"
	status=1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/t4dx-install.XXXXXX") || exit 1
trap 'rm -rf -- "$tmp"' EXIT
stage=$tmp/stage

# make as a user types it: not as part of the make check that runs this
# test (its jobserver and flags are not ours).
mk() {
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES \
		make --no-print-directory -C "$builddir" "$@"
}

# The configured installation directories, as make expands them.
cat >"$tmp/print.mk" <<'EOF'
print-%:
	@printf '%s\n' '$($*)'
EOF
dir() {
	mk -s -f Makefile -f "$tmp/print.mk" "print-$1"
}
prefix=$(dir prefix)
bindir=$(dir bindir)
mandir=$(dir mandir)
man1dir=$(dir man1dir)
man5dir=$(dir man5dir)
man8dir=$(dir man8dir)
compdir=$(dir bashcompletiondir)
for v in prefix bindir mandir man1dir man5dir man8dir compdir; do
	if [[ ${!v} != /* ]]; then
		echo "FAIL: cannot read $v from $builddir/Makefile (got '${!v}')"
		exit 1
	fi
done
echo "# prefix $prefix, bindir $bindir, mandir $mandir, completions $compdir"

if ! out=$(mk install DESTDIR="$stage" 2>&1); then
	printf '%s\n' "$out" | tail -n 30
	echo "FAIL: make install DESTDIR=$stage failed"
	exit 1
fi

# installed FILE: FILE (an installed path) exists in the staging directory.
installed() {
	if [[ -f $stage$1 ]]; then
		echo "ok: installed $1"
	else
		fail "make install did not install $1"
		return 1
	fi
}

for p in t4dxfs t4dx; do
	installed "$bindir/$p" || continue
	if [[ ! -x $stage$bindir/$p ]]; then
		fail "$bindir/$p is not executable"
	elif ! v=$("$stage$bindir/$p" --version 2>&1) || [[ $v != "$p "[0-9]* ]]; then
		fail "the installed $p --version says: $v"
	else
		echo "ok: the installed $p runs: $v"
	fi
done

installed "$man1dir/t4dx.1"
installed "$man5dir/t4dx-files.5"
installed "$man8dir/t4dxfs.8"
if command -v man >/dev/null; then
	for page in 1:t4dx 5:t4dx-files 8:t4dxfs; do
		want=$stage$mandir/man${page%%:*}/${page#*:}.${page%%:*}
		got=$(man -M "$stage$mandir" -w "${page%%:*}" "${page#*:}" 2>&1)
		if [[ $got == "$want" || $got == "$want.gz" ]]; then
			echo "ok: man finds ${page#*:}(${page%%:*}) in the installed tree"
		else
			fail "man -M $stage$mandir -w ${page#*:} says: $got"
		fi
	done
fi

for c in t4dx t4dxfs; do
	installed "$compdir/$c" || continue
	if reg=$(bash --norc --noprofile -c 'source "$1" && complete -p "$2"' _ "$stage$compdir/$c" "$c" 2>&1) &&
		[[ $reg == "complete -F _$c $c" ]]; then
		echo "ok: the installed completion registers: $reg"
	else
		fail "sourcing $compdir/$c does not register a completion for $c: $reg"
	fi
done

outside=$(cd "$stage" && find . ! -type d | sed 's/^\.//' | grep -v "^$prefix/")
if [[ -n $outside ]]; then
	fail "installed outside the prefix $prefix: $outside"
else
	echo "ok: everything is installed under $prefix ($(cd "$stage" && find . ! -type d | wc -l) files)"
fi

if ! out=$(mk uninstall DESTDIR="$stage" 2>&1); then
	printf '%s\n' "$out" | tail -n 30
	fail "make uninstall DESTDIR=$stage failed"
fi
left=$(cd "$stage" && find . ! -type d)
if [[ -n $left ]]; then
	fail "make uninstall left: $left"
else
	echo "ok: make uninstall removes every installed file"
fi

exit $status
