#!/usr/bin/env bats
# install.bats - the installed t4dxfs mounts through mount(8):
# mount -t fuse.t4dxfs DATA MNT -> /sbin/mount.fuse3 -> t4dxfs, and umount
# stops it.
#
# Each test installs the build tree into a staging directory (make install
# DESTDIR=...), never into the real prefix.  mount(8) runs its helper with
# a cleaned environment (util-linux drops PATH, also for root), and
# mount.fuse3 starts the program through /bin/sh, which then searches its
# default path (/usr/local/sbin:/usr/local/bin:/usr/sbin:...).  So PATH
# cannot point it at the staged copy.  Instead the test gets a private
# mount namespace (unshare, kept in a file under T4DX_TMP and entered with
# nsenter) in which the staged bin directory is bound over /usr/local/bin:
# there the staged t4dxfs is where `make install` puts it, and nothing
# changes for the rest of the machine.  The FUSE mount lives in that
# namespace too, so a failing test cannot leave it behind on the host:
# the teardown of lib/mount.bash unmounts the namespace's file and kills
# the daemon (its command line names T4DX_TMP), and the namespace goes
# with its last process.
#
# Without -f the daemon logs to syslog; ASAN_OPTIONS sends a sanitizer
# report of a sanitizer build to files in T4DX_TMP instead, which the test
# checks.

load ../lib/mount

# make as a user types it, not as part of the make check running us.
_install_make() {
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES \
		make --no-print-directory -C "$T4DX_BUILDDIR" "$@"
}

# in_ns CMD...: run CMD in the test's mount namespace.
in_ns() {
	nsenter --mount="$T4DX_TMP/ns/mnt" -- "$@"
}

setup() {
	t4dx_setup
	[[ $EUID == 0 ]] || skip "mount(8) of a FUSE file system needs root here"
	local t
	for t in unshare nsenter findmnt make; do
		command -v "$t" >/dev/null || skip "$t is missing"
	done
	[[ -x /sbin/mount.fuse3 ]] || skip "/sbin/mount.fuse3 is missing (Debian package fuse3)"
	[[ -f $T4DX_BUILDDIR/Makefile ]] || skip "$T4DX_BUILDDIR is not a configured build tree"

	STAGE=$T4DX_TMP/stage
	printf 'print-%%:\n\t@printf "%%s\\n" "$($*)"\n' >"$T4DX_TMP/print.mk"
	BINDIR=$(_install_make -s -f Makefile -f "$T4DX_TMP/print.mk" print-bindir)
	[[ $BINDIR == /* ]] || fail "cannot read bindir from the Makefile: '$BINDIR'"
	local out
	out=$(_install_make install DESTDIR="$STAGE" 2>&1) ||
		fail "make install DESTDIR=$STAGE failed: $(tail -n 20 <<<"$out")"
	[[ -x $STAGE$BINDIR/t4dxfs ]] || fail "make install put no t4dxfs in $BINDIR"

	# The namespace, kept in a file on a private bind mount (a namespace
	# file cannot sit on a shared mount).
	mkdir "$T4DX_TMP/ns"
	mount --bind "$T4DX_TMP/ns" "$T4DX_TMP/ns"
	mount --make-private "$T4DX_TMP/ns"
	: >"$T4DX_TMP/ns/mnt"
	unshare --mount="$T4DX_TMP/ns/mnt" --propagation private true ||
		fail "cannot make a mount namespace"
	# The namespace starts with a copy of every mount, those of other
	# tests' daemons too: a copy would keep such a file system alive
	# after its owner unmounts it, and its daemon running.  Let go of
	# them here (lazily: nothing in the namespace uses them).
	in_ns sh -c 'findmnt -rn -o TARGET,FSTYPE | while read -r m t; do
		case $t in fuse|fuse.*) umount -l "$m" ;; esac; done' ||
		fail "cannot drop the FUSE mounts copied into the namespace"
	in_ns mount --bind "$STAGE$BINDIR" /usr/local/bin ||
		fail "cannot bind $STAGE$BINDIR over /usr/local/bin in the namespace"
	run in_ns sh -c 'command -v t4dxfs'
	assert_output /usr/local/bin/t4dxfs
}

teardown() {
	t4dx_teardown
}

# in_ns_mount ARG...: mount ARG... in the namespace, with rescue files (if
# any) in T4DX_TMP and a sanitizer report of the detached daemon in files
# there (mount(8) passes these variables on).
in_ns_mount() {
	env TMPDIR="$T4DX_TMP" \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$T4DX_TMP/asan" \
		UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$T4DX_TMP/ubsan" \
		nsenter --mount="$T4DX_TMP/ns/mnt" -- mount "$@"
}

# mount_t4dx [OPTIONS]: mount -t fuse.t4dxfs [-o OPTIONS] DATA MNT in the
# namespace; sets DAEMON to the pid of the daemon it started.
mount_t4dx() {
	local opts=()
	[[ -z ${1:-} ]] || opts=(-o "$1")
	run in_ns_mount -t fuse.t4dxfs "${opts[@]}" "$DATA" "$MNT"
	assert_success
	DAEMON=$(t4dx_daemon_pid)
	[[ $DAEMON =~ ^[0-9]+$ ]] || fail "no single t4dxfs process serves $DATA: '$DAEMON'"
	t4dx_track "$DAEMON"
}

# umount_t4dx: umount MNT in the namespace, wait (bounded) until the daemon
# has exited and no t4dxfs serves DATA, and check MNT is no mount point.
umount_t4dx() {
	run in_ns umount "$MNT"
	assert_success
	t4dx_wait_for "$T4DX_EXIT_TIMEOUT" t4dx_dead "$DAEMON" ||
		fail "t4dxfs (pid $DAEMON) still running ${T4DX_EXIT_TIMEOUT}s after umount"
	assert_equal "$(t4dx_daemon_pid)" ""
	run in_ns findmnt "$MNT"
	assert_failure
}

# No sanitizer report from the daemon.
refute_sanitizer_reports() {
	local f
	for f in "$T4DX_TMP"/asan.* "$T4DX_TMP"/ubsan.*; do
		[[ -e $f ]] && fail "sanitizer report from the daemon, $f:
$(head -n 60 "$f")"
	done
	return 0
}

@test "mount -t fuse.t4dxfs starts the installed t4dxfs; umount stops it and the data stays" {
	mount_t4dx nosuid,nodev
	# the process is the staged, installed binary, not the build tree's
	assert_equal "$(stat -L -c %d:%i "/proc/$DAEMON/exe")" \
		"$(stat -L -c %d:%i "$STAGE$BINDIR/t4dxfs")"
	# mount(8) passed on where a sanitizer report goes
	run grep -c "^ASAN_OPTIONS=.*log_path=$T4DX_TMP/asan\$" \
		<(tr '\0' '\n' <"/proc/$DAEMON/environ")
	assert_output 1
	run in_ns findmnt -n -o FSTYPE,SOURCE,OPTIONS "$MNT"
	assert_success
	assert_output --regexp "^fuse\.t4dxfs +t4dx:$DATA +.*nosuid"
	assert_output --regexp 'nodev'

	in_ns sh -c 'printf "met Alice at the cafe\n" >"$1/items/alice-cafe"' _ "$MNT"
	in_ns mkdir "$MNT/items/agent-7"
	in_ns cp /dev/null "$MNT/items/agent-7/empty"
	run in_ns cat "$MNT/items/alice-cafe"
	assert_success
	assert_output "met Alice at the cafe"
	run in_ns jq -r '.status + " " + (.level | tostring)' "$MNT/.ctl/health"
	assert_success
	assert_output "ok 0"

	umount_t4dx

	# the next mount finds what the first one stored
	mount_t4dx
	run in_ns cat "$MNT/items/alice-cafe"
	assert_output "met Alice at the cafe"
	run in_ns ls "$MNT/items/agent-7"
	assert_output "empty"
	umount_t4dx
	refute_sanitizer_reports
}

@test "the line of contrib/fstab.example mounts with mount MNT and -o create" {
	# its active line, with this test's directories and -o create
	local line
	line=$(grep -E '^[^#[:space:]]+[[:space:]]+[^[:space:]]+[[:space:]]+fuse\.t4dxfs[[:space:]]' \
		"$T4DX_SRCDIR/contrib/fstab.example")
	[[ -n $line ]] || fail "contrib/fstab.example has no fuse.t4dxfs line"
	rmdir "$DATA"
	read -r _ _ type opts dump pass <<<"$line"
	printf '%s %s %s %s,create %s %s\n' "$DATA" "$MNT" "$type" "$opts" "$dump" "$pass" \
		>"$T4DX_TMP/fstab"

	run in_ns_mount --fstab "$T4DX_TMP/fstab" "$MNT"
	assert_success
	DAEMON=$(t4dx_daemon_pid)
	[[ $DAEMON =~ ^[0-9]+$ ]] || fail "no single t4dxfs process serves $DATA: '$DAEMON'"
	t4dx_track "$DAEMON"
	# -o create made DATA_DIR, private
	run stat -c %a "$DATA"
	assert_output 700
	in_ns sh -c 'printf "prefers green tea\n" >"$1/items/tea"' _ "$MNT"
	run in_ns cat "$MNT/items/tea"
	assert_output "prefers green tea"
	umount_t4dx
	refute_sanitizer_reports
}
