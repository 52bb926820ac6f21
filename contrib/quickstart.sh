#!/usr/bin/env bash
# contrib/quickstart.sh - from a fresh Debian 12 machine to a working t4dx.
#
#   bash contrib/quickstart.sh [mount]   install what is missing, build, and
#                                        mount DATA_DIR on MOUNTPOINT
#   bash contrib/quickstart.sh test      install what is missing, build from
#                                        scratch with -Werror, run make check
#
# Run it as root (apt-get needs it; without root it only works when every
# package is already there).  It builds in the source tree it belongs to.
#
# Environment:
#   T4DX_DATA        data directory             (default /var/lib/t4dx)
#   T4DX_MOUNT       mount point                (default /mnt/t4dx)
#   T4DX_OPTIONS     extra -o options for t4dxfs (mount mode)
#   T4DX_SANITIZE=0  test mode: skip the second build and run with
#                    AddressSanitizer and UndefinedBehaviorSanitizer
#   T4DX_LOG_LINES   lines of each failing test's log to print (default 60)
#   T4DX_NO_INSTALL=1  do not look at or install packages
#
# Test mode ends with one line "N passed, M failed, K skipped" (see
# contrib/test-totals.sh) and exits with make check's status.  A build or
# make check that fails without any failing test result is counted there
# as one failed result, so a non-zero exit never comes with "0 failed".
set -euo pipefail

# The package list, one a line with its reason: contrib/packages.txt.
mapfile -t PACKAGES < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' \
	-e 's/[[:space:]]//g' "$(dirname "${BASH_SOURCE[0]}")/packages.txt")
if [[ ${#PACKAGES[@]} -eq 0 ]]; then
	echo "quickstart: contrib/packages.txt is missing or empty" >&2
	exit 2
fi

srcdir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prog=quickstart

say() { printf '==> %s\n' "$*"; }
warn() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { warn "$*"; exit 1; }

usage() {
	cat <<EOF
usage: bash contrib/quickstart.sh [mount|test]
  mount (default)  install, build, mount ${T4DX_DATA:-/var/lib/t4dx} on ${T4DX_MOUNT:-/mnt/t4dx}
  test             install, build from scratch, run the whole test suite
EOF
}

# ---- packages -----------------------------------------------------------

install_packages() {
	local p status missing=()

	if [[ ${T4DX_NO_INSTALL:-0} == 1 ]]; then
		return 0
	fi
	if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
		warn "no dpkg-query/apt-get: not a Debian system; make sure these are installed:"
		warn "  ${PACKAGES[*]}"
		return 0
	fi
	for p in "${PACKAGES[@]}"; do
		# shellcheck disable=SC2016  # ${Status} is dpkg-query's, not ours
		status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
		if [[ $status != "install ok installed" ]]; then
			missing+=("$p")
		fi
	done
	if [[ ${#missing[@]} -eq 0 ]]; then
		say "all ${#PACKAGES[@]} packages are installed"
		return 0
	fi
	if [[ $(id -u) -ne 0 ]]; then
		die "missing packages (run as root to install them): ${missing[*]}"
	fi
	say "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=300 update
	apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${missing[@]}"
}

# ---- build --------------------------------------------------------------

# Build from scratch in the source tree with the given configure options.
# Returns non-zero (instead of exiting) on failure so that test mode can
# still report; every step checks its own status because `set -e` does not
# apply inside a function called from a condition.
build() {
	cd "$srcdir" || return
	if [[ -f Makefile ]]; then
		say "make distclean (errors ignored)"
		make distclean >/dev/null 2>&1 || true
	fi
	say "autoreconf -fi"
	autoreconf -fi || return
	# automake does not install the TAP driver by itself; Makefile.am runs
	# the bats suites through build-aux/tap-driver.sh.
	if [[ ! -f build-aux/tap-driver.sh ]]; then
		local amdir
		amdir=$(automake --print-libdir) || return
		cp "$amdir/tap-driver.sh" build-aux/tap-driver.sh || return
	fi
	say "./configure $*"
	./configure "$@" || return
	say "make -j$(nproc)"
	make -j"$(nproc)" || return
}

# ---- mount mode ---------------------------------------------------------

# A FUSE mount whose daemon died answers every call with ENOTCONN
# ("Transport endpoint is not connected") until it is unmounted.
clear_stale_mount() {
	local mnt=$1 err

	if err=$(LC_ALL=C stat -- "$mnt" 2>&1 >/dev/null); then
		return 0
	fi
	case $err in
	*"Transport endpoint is not connected"*)
		say "$mnt is a stale mount (its daemon is gone): unmounting it"
		fusermount3 -u "$mnt" 2>/dev/null ||
			fusermount3 -uz "$mnt" 2>/dev/null ||
			umount -l "$mnt"
		;;
	esac
}

print_usage_help() {
	local data=$1 mnt=$2
	cat <<EOF

t4dx is mounted: data in $data, files under $mnt.

  echo "met Alice at the cafe" > $mnt/items/alice-cafe   # stored when close() returns
  cat $mnt/items/alice-cafe
  ls -l $mnt/items
  mkdir $mnt/items/agent-1                               # a namespace
  echo "prefers tea" > $mnt/items/agent-1/tea
  setfattr -n user.t4dx.importance -v 0.9 $mnt/items/agent-1/tea
  getfattr -d -m '^user\.t4dx\.' $mnt/items/agent-1/tea
  cat $mnt/.ctl/stats | jq .

Unmount (the daemon then exits cleanly):
  fusermount3 -u $mnt

Mount again later without rebuilding:
  $srcdir/fs/t4dxfs $data $mnt
EOF
}

do_mount() {
	local data=${T4DX_DATA:-/var/lib/t4dx}
	local mnt=${T4DX_MOUNT:-/mnt/t4dx}
	local fstype opts=()

	install_packages
	build || die "build failed"

	if [[ ! -e /dev/fuse ]]; then
		modprobe fuse 2>/dev/null || true
	fi
	[[ -e /dev/fuse ]] ||
		die "/dev/fuse is missing: this kernel or container has no FUSE (in a container: --device /dev/fuse --cap-add SYS_ADMIN)"

	clear_stale_mount "$mnt"
	if mountpoint -q -- "$mnt" 2>/dev/null; then
		fstype=$(findmnt -n -o FSTYPE --mountpoint "$mnt" 2>/dev/null || true)
		if [[ $fstype == fuse.t4dxfs ]]; then
			say "t4dxfs is already mounted on $mnt (it keeps the binary it was started with;"
			say "unmount with 'fusermount3 -u $mnt' and rerun to use the new build)"
			print_usage_help "$data" "$mnt"
			return 0
		fi
		die "$mnt is already a mount point (${fstype:-unknown type}); set T4DX_MOUNT to another directory"
	fi

	# the store holds every user's content: private to its owner
	mkdir -p -m 700 -- "$data"
	mkdir -p -- "$mnt"
	opts=(-o create)
	if [[ -n ${T4DX_OPTIONS:-} ]]; then
		opts=(-o "create,$T4DX_OPTIONS")
	fi
	say "fs/t4dxfs ${opts[*]} $data $mnt"
	"$srcdir/fs/t4dxfs" "${opts[@]}" "$data" "$mnt" ||
		die "t4dxfs could not mount $data on $mnt (see its message above)"
	mountpoint -q -- "$mnt" || die "t4dxfs returned but $mnt is not mounted"
	print_usage_help "$data" "$mnt"
}

# ---- test mode ----------------------------------------------------------

results=""

# Record a failure that left no test result behind (a failed build, or a
# make check that stopped before running tests) so the totals show it.
record_error() {
	local label=$1 what=$2
	mkdir -p "$results/$label"
	printf ':test-result: ERROR %s\n' "$what" >>"$results/$label/errors.trs"
	warn "$label: $what"
}

# Print the interesting part of the log of every test in the result copy
# dir that did not pass (the logs themselves are read from the build tree).
print_failures() {
	local dir=$1 trs rel log n=${T4DX_LOG_LINES:-60}

	while IFS= read -r -d '' trs; do
		grep -qE '^:test-result: (FAIL|ERROR|XPASS)' "$trs" || continue
		rel=${trs#"$dir"/}
		log=${rel%.trs}.log
		printf '\n----- %s -----\n' "${log#./}"
		if [[ ! -f $log ]]; then
			echo "(no log)"
			continue
		fi
		if grep -q '^not ok' "$log"; then
			# TAP (bats): each failed case with its '#' diagnostics
			# (the driver's own PASS:/FAIL: lines come in between),
			# and the driver's ERROR lines (bad plan, exit status).
			awk '/^not ok/ { p = 1; print; next }
			     /^ERROR: / { print; next }
			     /^(PASS|FAIL|SKIP|XFAIL|XPASS): / { next }
			     p && /^#/ { print; next }
			     { p = 0 }' "$log" | tail -n "$n"
		else
			tail -n "$n" "$log"
		fi
	done < <(find "$dir" -type f -name '*.trs' -print0 | sort -z)
}

# Run make check; keep the results it wrote in $results/<label>; return its
# status.  Only .trs files written by this run are taken (newer than a stamp).
run_check() {
	local label=$1 rc=0 stamp failed

	stamp="$results/$label.stamp"
	mkdir -p "$results/$label"
	touch "$stamp"
	say "make -j2 check ($label)"
	make -j2 check || rc=$?
	find . -name .git -prune -o -type f -name '*.trs' -newer "$stamp" -print0 |
		xargs -0 -r cp --parents -t "$results/$label"
	rm -f "$stamp"
	if [[ $rc -ne 0 ]]; then
		print_failures "$results/$label"
		failed=$(bash "$srcdir/contrib/test-totals.sh" "$results/$label" | awk '{ print $3 }')
		if [[ $failed == 0 ]]; then
			record_error "$label" "make check exited $rc without a failing test result"
		fi
	fi
	return "$rc"
}

do_test() {
	local status=0 rc

	install_packages
	results=$(mktemp -d "${TMPDIR:-/tmp}/t4dx-results.XXXXXX")
	trap 'rm -rf -- "$results"' EXIT

	if build --enable-werror; then
		rc=0
		run_check plain || rc=$?
		[[ $rc -eq 0 ]] || status=$rc
	else
		status=$?
		record_error plain "build failed (exit $status)"
	fi

	if [[ ${T4DX_SANITIZE:-1} == 1 ]]; then
		export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
		if build --enable-werror --enable-sanitizers; then
			rc=0
			run_check sanitizers || rc=$?
			[[ $rc -eq 0 ]] || status=$rc
		else
			rc=$?
			record_error sanitizers "build with sanitizers failed (exit $rc)"
			status=$rc
		fi
	fi

	echo
	bash "$srcdir/contrib/test-totals.sh" "$results"
	return "$status"
}

# ---- main -----------------------------------------------------------------

cd "$srcdir"
case ${1:-mount} in
mount) do_mount ;;
test) do_test ;;
-h | --help | help) usage ;;
*)
	usage >&2
	exit 2
	;;
esac
