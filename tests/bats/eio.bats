#!/usr/bin/env bats
# eio.bats - a disk whose syncs fail with EIO (DESIGN.md sections 5, 6
# and 7), injected into the running daemon with libfiu.
#
# The daemon runs under `fiu-run -x` (libfiu's POSIX preload);
# `fiu-ctrl` then makes fsync and fdatasync (posix/io/sync/*) fail with
# EIO (failinfo=5; without it libfiu picks a random errno) and later
# works again.  write/writev are never touched: libfuse answers the
# kernel through them.  Expectations as for a full disk: writes go on
# being acknowledged, the breaker opens, health shows level 1 and the
# unpersisted count; once syncs work the store recovers by itself, and
# after a restart every acknowledged write is there byte for byte.

load ../lib/mount

setup() {
	t4dx_have_fiu || skip "fiu-run, fiu-ctrl or libfiu's POSIX preload is missing"
	t4dx_setup
	REF=$T4DX_TMP/ref
	mkdir "$REF"
}

teardown() {
	t4dx_teardown_faults
}

FAIL_SYNC='enable name=posix/io/sync/*,failinfo=5'
HEAL_SYNC='disable name=posix/io/sync/*'

# config [FALLBACK-JSON-MEMBERS]: short breaker and health tick, and the
# given members of "fallback".
config() {
	t4dx_config_file "{\"breaker\":{\"failure_threshold\":2,\"reset_timeout_s\":0.5},
		\"health\":{\"interval_s\":0.2},\"fallback\":{${1:-}}}"
}

# degraded: breaker and health say the store is degraded, with writes
# held unpersisted (status is "failing" once the health checks failed
# alert_threshold times in a row).
degraded() {
	t4dx_ctl_test breaker '.state == "OPEN"' &&
		t4dx_ctl_test health '.level >= 1 and .mode == "read-only" and
			(.status | IN("degraded", "failing")) and .unpersisted > 0'
}

# metric NAME: the sum of the samples of metric NAME in .ctl/metrics.
metric() {
	awk -v n="$1" '$1 !~ /^#/ { s = $1; sub(/\{.*/, "", s)
		if (s == n) { found = 1; sum += $NF } }
		END { if (!found) exit 1; print sum + 0 }' "$MNT/.ctl/metrics"
}

# assert_lsns_strictly_increase: in the WAL files as they are on disk
# (archived and live, in the order of their names, which are their first
# lsn), every record has a larger lsn than the one before it: a failed
# commit left no record behind that a retry wrote again.
assert_lsns_strictly_increase() {
	local lsns=$T4DX_TMP/lsns
	find "$DATA/wal" -name '*.jsonl' -printf '%f %p\n' | LC_ALL=C sort |
		cut -d' ' -f2- | xargs -d '\n' cat -- |
		jq -R -c 'fromjson? | [.lsn, .op, .name]' >"$lsns"
	run jq -s -e '[.[][0]] as $l | ($l | length) > 0 and
		([range(1; $l | length) | select($l[.] <= $l[. - 1])] | length) == 0' "$lsns"
	if ((status != 0)); then
		fail "WAL lsns do not strictly increase: $(tr '\n' ' ' <"$lsns" | head -c 3000)"
	fi
}

@test "syncs fail with EIO: writes acknowledged, breaker OPEN, level 1; syncs heal, it recovers by itself; all there after remount" {
	local cfg i
	cfg=$(config)
	t4dx_start_fiu -o "config=$cfg"
	for ((i = 0; i < 5; i++)); do
		t4dx_ack_put "$REF" "before$i" || fail "before$i: $T4DX_ACK_ERR"
	done
	t4dx_fiu "$FAIL_SYNC"

	local opened=-1
	for ((i = 0; i < 60; i++)); do
		t4dx_ack_put "$REF" "eio$i" ||
			fail "write eio$i while syncs fail was not acknowledged: $T4DX_ACK_ERR"
		if ((opened < 0)) && t4dx_ctl_test breaker '.state == "OPEN"'; then
			opened=$i
		fi
		((opened >= 0 && i - opened >= 10)) && break
	done
	((opened >= 0)) || fail "breaker not OPEN after 60 writes whose syncs failed: $(cat "$MNT/.ctl/breaker")"
	echo "# breaker OPEN after write $opened"
	t4dx_wait_for 5 degraded || fail "not degraded: $(cat "$MNT/.ctl/health")"
	run metric t4dx_degradation_level
	assert_output 1
	run metric t4dx_unpersisted_writes
	((output > 0)) || fail "t4dx_unpersisted_writes is '$output' while degraded"
	# queued changes are seen at once
	run rm "$ITEMS/before1"
	assert_success
	rm "$REF/before1"
	run mv "$ITEMS/before2" "$ITEMS/moved"
	assert_success
	mv "$REF/before2" "$REF/moved"
	t4dx_ack_put "$REF" eio0 "eio0, version 2" || fail "eio0 v2: $T4DX_ACK_ERR"
	t4dx_assert_acked "$REF"
	# the health probe keeps failing, so it stays degraded
	local runs
	runs=$(t4dx_ctl_get health .checks.wal.runs)
	t4dx_wait_ctl 5 health ".checks.wal.runs >= $runs + 3"
	run degraded
	assert_success

	t4dx_fiu "$HEAL_SYNC"
	t4dx_wait_recovered 20
	run jq -e '.status == "ok" and .checks.wal.ok == true' "$MNT/.ctl/health"
	assert_success
	run metric t4dx_unpersisted_writes
	assert_output 0
	t4dx_assert_acked "$REF"
	t4dx_ack_put "$REF" after "after the disk healed" || fail "after: $T4DX_ACK_ERR"

	t4dx_remount -o "config=$cfg"
	t4dx_assert_acked "$REF"
	assert_lsns_strictly_increase
}

@test "syncs fail while the store is idle: the health probe alone opens the breaker, then a write is queued" {
	local cfg
	cfg=$(config)
	t4dx_start_fiu -o "config=$cfg"
	t4dx_ack_put "$REF" before || fail "before: $T4DX_ACK_ERR"
	t4dx_fiu "$FAIL_SYNC"
	t4dx_wait_ctl 10 breaker '.state == "OPEN"'
	t4dx_wait_ctl 5 health '.level >= 1 and .checks.wal.ok == false and
		.checks.wal.consecutive_failures >= 1'
	# each change of level is an alert
	run grep -iE 'level|degrad|read-only' "$MNT/.ctl/alerts"
	assert_success
	local n0
	n0=$(wc -l <"$MNT/.ctl/alerts")

	t4dx_ack_put "$REF" queued || fail "write while OPEN: $T4DX_ACK_ERR"
	run jq -e '.unpersisted > 0' "$MNT/.ctl/health"
	assert_success
	run cat "$ITEMS/queued"
	assert_output "$(t4dx_content queued)"

	t4dx_fiu "$HEAL_SYNC"
	t4dx_wait_recovered 20
	# the way back is an alert too
	local n1
	n1=$(wc -l <"$MNT/.ctl/alerts")
	((n1 > n0)) || fail "no alert on recovery: $(cat "$MNT/.ctl/alerts")"
	run tail -n "$((n1 - n0))" "$MNT/.ctl/alerts"
	assert_output --regexp 'CLOSED'
	t4dx_remount -o "config=$cfg"
	t4dx_assert_acked "$REF"
}

@test "syncs fail, policy reject: writes fail fast with EIO, nothing is queued or acknowledged" {
	local cfg i
	cfg=$(config '"policy":"reject"')
	t4dx_start_fiu -o "config=$cfg"
	t4dx_ack_put "$REF" before || fail "before: $T4DX_ACK_ERR"
	t4dx_fiu "$FAIL_SYNC"
	: >"$T4DX_TMP/maybe"
	# every write fails (its sync fails) until OPEN, then fails fast
	for ((i = 0; i < 10; i++)); do
		run cp <(printf 'x\n') "$ITEMS/r$i"
		assert_failure
		assert_output --partial 'Input/output error'
		echo "r$i" >>"$T4DX_TMP/maybe"
	done
	run jq -e '.state == "OPEN"' "$MNT/.ctl/breaker"
	assert_success
	run jq -e '.unpersisted == 0 and .level >= 1 and .mode == "read-only"' "$MNT/.ctl/health"
	assert_success
	local t0 ms
	t0=$(_t4dx_now_us)
	run setfattr -n user.t4dx.kappa -v 0.5 "$ITEMS/before"
	assert_failure
	assert_output --partial 'Input/output error'
	run rm "$ITEMS/before"
	assert_failure
	ms=$((($(_t4dx_now_us) - t0) / 1000))
	((ms < 2000)) || fail "two refused writes took $ms ms"
	t4dx_assert_acked "$REF" "$ITEMS" "$T4DX_TMP/maybe"
	t4dx_assert_refused_empty "$T4DX_TMP/maybe"
	run t4dx_xattr kappa "$ITEMS/before"
	t4dx_num_eq "$output" 0 || fail "kappa changed by a refused setxattr: $output"

	t4dx_fiu "$HEAL_SYNC"
	t4dx_wait_recovered 20
	t4dx_remount -o "config=$cfg"
	# a refused write never happened, not even after the restart (the
	# first ones, refused at their commit, may have created an empty file;
	# those refused while OPEN did not even create it)
	t4dx_assert_refused_empty "$T4DX_TMP/maybe"
	for ((i = 2; i < 10; i++)); do assert_file_not_exists "$ITEMS/r$i"; done
	t4dx_assert_acked "$REF" "$ITEMS" "$T4DX_TMP/maybe"
}

# fsync_ok PATH... / fsync_eio PATH...: fsync (and, for a file, fdatasync)
# of each PATH succeeds / fails with EIO.
fsync_ok() {
	local p
	for p in "$@"; do
		run sync -- "$p"
		((status == 0)) || fail "fsync of $p failed: $output"
		[[ -d $p ]] && continue
		run dd if=/dev/null of="$p" conv=notrunc,fdatasync status=none
		((status == 0)) || fail "fdatasync of $p failed: $output"
	done
}

fsync_eio() {
	local p
	for p in "$@"; do
		run sync -- "$p"
		((status != 0)) || fail "fsync of $p said 0 while a change of it is not on disk"
		[[ $output == *"Input/output error"* ]] || fail "fsync of $p: $output"
		[[ -d $p ]] && continue
		run dd if=/dev/null of="$p" conv=notrunc,fdatasync status=none
		((status != 0)) || fail "fdatasync of $p said 0 while a change of it is not on disk"
	done
}

# start_split: mount under libfiu with files and directories whose records
# are all on disk, then make syncs fail.
start_split() {
	local d
	t4dx_start_fiu -o "config=$(config)"
	for d in quiet busy attrs gone from to; do
		mkdir "$ITEMS/$d" "$REF/$d"
	done
	for d in quiet/b attrs/c attrs/x gone/g from/f; do
		t4dx_ack_put "$REF" "$d" || fail "$d: $T4DX_ACK_ERR"
	done
	fsync_ok "$ITEMS/quiet/b" "$ITEMS/quiet" "$ITEMS"
	t4dx_fiu "$FAIL_SYNC"
}

# change_split: while syncs fail, change busy/a (new), attrs/c (chmod),
# attrs/x (setxattr), gone/ (unlink) and from/f (renamed into to/); each
# is acknowledged as unpersisted.
change_split() {
	t4dx_ack_put "$REF" busy/a "A, not on disk" || fail "busy/a: $T4DX_ACK_ERR"
	chmod 600 "$ITEMS/attrs/c"
	setfattr -n user.t4dx.kappa -v 0.5 "$ITEMS/attrs/x"
	rm "$ITEMS/gone/g" "$REF/gone/g"
	mv "$ITEMS/from/f" "$ITEMS/to/f"
	mv "$REF/from/f" "$REF/to/f"
	t4dx_ctl_test health '.unpersisted > 0' ||
		fail "not unpersisted: $(cat "$MNT/.ctl/health")"
}

# heal_split: syncs work again; once recovered every fsync says 0, and
# after a remount every change is there.
heal_split() {
	t4dx_fiu "$HEAL_SYNC"
	t4dx_wait_recovered 20
	fsync_ok "$ITEMS/busy/a" "$ITEMS/busy" "$ITEMS/attrs/c" "$ITEMS/attrs/x" \
		"$ITEMS/gone" "$ITEMS/from" "$ITEMS/to" "$ITEMS/to/f" "$ITEMS/quiet/b"
	t4dx_remount -o "config=$(config)"
	t4dx_assert_acked "$REF"
	run stat -c %a "$ITEMS/attrs/c"
	assert_output 600
	run t4dx_xattr kappa "$ITEMS/attrs/x"
	assert_output 0.5
}

@test "syncs fail: fsync of a file answers for the file's own changes only (0 for a file on disk, EIO for one whose change is not)" {
	start_split
	change_split
	# content, mode, xattr, name: not on disk, whatever close said
	fsync_eio "$ITEMS/busy/a" "$ITEMS/attrs/c" "$ITEMS/attrs/x" "$ITEMS/to/f"
	# a file none of them changed is on disk: 0, also once the breaker
	# is open, however often asked
	fsync_ok "$ITEMS/quiet/b"
	t4dx_wait_ctl 5 breaker '.state == "OPEN"'
	fsync_ok "$ITEMS/quiet/b"
	fsync_eio "$ITEMS/busy/a"
	heal_split
}

@test "syncs fail: fsync of a directory waits for the changes of its entries (create, unlink, rename from and into it, chmod and setxattr of one), not for others" {
	start_split
	change_split
	# attrs/: a chmod and a setxattr of its entries, which do not wait
	# for the disk themselves
	fsync_eio "$ITEMS/busy" "$ITEMS/gone" "$ITEMS/from" "$ITEMS/to" \
		"$ITEMS/attrs"
	# a directory none of whose entries changed: 0
	fsync_ok "$ITEMS/quiet"
	# items/, the root of the tree, waits for every change (t4dx sync)
	fsync_eio "$ITEMS"
	t4dx_wait_ctl 5 breaker '.state == "OPEN"'
	fsync_ok "$ITEMS/quiet"
	fsync_eio "$ITEMS/to" "$ITEMS"
	heal_split
}
