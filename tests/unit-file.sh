#!/usr/bin/env bash
# tests/unit-file.sh - contrib/t4dxfs.service passes systemd-analyze verify.
#
# The unit runs /usr/local/bin/t4dxfs, which `make install` puts there but
# a build tree does not have, and names its manual pages; systemd-analyze
# checks both.  So a copy of the unit is verified in which the daemon is
# the one just built (T4DX_BUILDDIR/fs/t4dxfs), with MANPATH on the pages
# of contrib/man.  Everything else in the copy is the unit as shipped.
# Last, a copy whose ExecStart names a program that does not exist must
# fail: a check that cannot fail here proves nothing.
#
# usage: bash tests/unit-file.sh      exit 0 fine, 1 problems, 77 skip
set -uo pipefail

srcdir=${T4DX_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=${T4DX_BUILDDIR:-$srcdir}
unit=$srcdir/contrib/t4dxfs.service
daemon=$builddir/fs/t4dxfs
installed=/usr/local/bin/t4dxfs

if ! command -v systemd-analyze >/dev/null; then
	echo "SKIP: systemd-analyze is not installed (Debian package systemd)"
	exit 77
fi
if [[ ! -x $daemon ]]; then
	echo "FAIL: $daemon is not built (set T4DX_BUILDDIR)"
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/t4dx-unit.XXXXXX") || exit 1
trap 'rm -rf -- "$tmp"' EXIT
mkdir -p "$tmp/ok" "$tmp/bad" "$tmp/man/man1" "$tmp/man/man5" "$tmp/man/man8"
for p in "$srcdir"/contrib/man/*.[158]; do
	ln -s "$p" "$tmp/man/man${p##*.}/"
done

n=$(grep -c "^ExecStart=$installed " "$unit")
if ((n != 1)); then
	echo "FAIL: $unit has $n ExecStart= lines running $installed (expected 1)"
	exit 1
fi
sed "s#$installed#$daemon#g" "$unit" >"$tmp/ok/t4dxfs.service"

status=0
# verify DIR: systemd-analyze verify DIR/t4dxfs.service; its output (it
# also names problems of the system's own units: only ours count).
verify() {
	MANPATH=$tmp/man SYSTEMD_LOG_COLOR=0 systemd-analyze verify \
		"$1/t4dxfs.service" 2>&1
}

if out=$(verify "$tmp/ok") && ! grep -q 't4dxfs\.service' <<<"$out"; then
	echo "ok: systemd-analyze verify passes contrib/t4dxfs.service (t4dxfs at $daemon)"
else
	echo "FAIL: systemd-analyze verify contrib/t4dxfs.service:"
	printf '%s\n' "$out" | sed 's/^/  /'
	status=1
fi

sed "s#^ExecStart=$installed#ExecStart=$tmp/no-such-t4dxfs#" "$unit" >"$tmp/bad/t4dxfs.service"
if out=$(verify "$tmp/bad"); then
	echo "FAIL: systemd-analyze verify passes a unit whose daemon does not exist: $out"
	status=1
elif ! grep -q 'no-such-t4dxfs' <<<"$out"; then
	echo "FAIL: systemd-analyze verify fails the unit without a daemon, but not for that: $out"
	status=1
else
	echo "ok: systemd-analyze verify fails a unit whose daemon does not exist"
fi
exit $status
