#!/usr/bin/env bats
# background.bats - the daemon run in the background (no -f), as a user
# starts it from a shell: relative paths on its command line and in its
# configuration mean what they meant where it was started.

load ../lib/mount

setup() {
	t4dx_setup
}

@test "a daemon mounted on a relative mountpoint (no -f) unmounts it at SIGTERM" {
	# As the quick start has it: cd somewhere, t4dxfs data mnt.  The
	# daemon goes to / when it detaches; its stop must still find the
	# mountpoint, or SIGTERM leaves a dead mount ("Transport endpoint
	# is not connected") behind.
	cd "$T4DX_TMP"
	t4dx_run_daemon data mnt
	assert_success
	t4dx_wait_for 10 t4dx_is_mounted "$MNT" || fail "never mounted"
	printf 'kept\n' >"$ITEMS/a"
	local pid
	pid=$(pgrep -f -x "$T4DXFS data mnt") || fail "no daemon"
	t4dx_track "$pid"
	kill -TERM "$pid"
	t4dx_wait_for 30 t4dx_dead "$pid" || fail "still running after SIGTERM"
	run t4dx_is_mounted "$MNT"
	assert_failure
	# and it stopped cleanly: nothing to replay, the file is there
	t4dx_start
	run cat "$ITEMS/a"
	assert_output 'kept'
}

@test "command embedder: a program named by a relative path runs in the background as with -f" {
	# The quick start's way (no -f), from the directory that holds the
	# program: the daemon goes to / when it detaches, and
	# "./my-embedder" then named nothing ("cannot start: No such file
	# or directory" at each back-off, no vector ever).
	cd "$T4DX_TMP"
	mkdir bin
	printf '#!/bin/bash\nexec bash %q answer 4\n' \
		"$T4DX_SRCDIR/tests/embed-cmd.sh" >bin/emb
	chmod +x bin/emb
	printf '%s\n' '{"vector":{"dim":4,"embedder":"command","timeout_s":10,"command":["./bin/emb"]}}' >cfg.json
	t4dx_run_daemon -o config=cfg.json data mnt
	assert_success
	t4dx_wait_for 10 t4dx_is_mounted "$MNT" || fail "never mounted"
	local pid
	pid=$(pgrep -f -x "$T4DXFS -o config=cfg.json data mnt") || fail "no daemon"
	t4dx_track "$pid"
	printf 'hello there\n' >"$ITEMS/a"
	t4dx_wait_for 20 getfattr -n user.t4dx.vector "$ITEMS/a" ||
		fail "no vector: $(cat "$MNT/.ctl/alerts")"
	run getfattr --absolute-names --only-values -n user.t4dx.vector "$ITEMS/a"
	assert_output '[1,12,0,0]'
}
