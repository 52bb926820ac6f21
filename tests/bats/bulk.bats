#!/usr/bin/env bats
# bulk.bats - bulk loads and when their changes are durable (issue 14):
# chmod, chown, utimens and setxattr do not wait for the disk, fsync of
# the file or its directory and `t4dx sync` do; the commit timer writes
# what nobody waits for; durability=fsync (mount option, .ctl/durability).

load ../lib/mount

setup() {
	t4dx_setup
}

# A long commit interval keeps the timer out of the way of the checks of
# what waits; no health probe (it commits too) and no embedder (its
# records would count as pending).
QUIET='{"wal":{"commit_interval_ms":60000},"health":{"interval_s":3600},
	"vector":{"embedder":"off"}}'

pending() { t4dx_stat_field wal_pending; }

# assert_pending_some / _none: records queued and not durable, or none.
assert_pending_some() {
	local n
	n=$(pending)
	((n > 0)) || fail "no record waits for the disk ($1)"
}
assert_pending_none() {
	local n
	n=$(pending)
	((n == 0)) || fail "$n records still wait for the disk ($1)"
}

@test "chmod, chown, touch and setfattr return before their record is durable; fsync of the file, of its directory and t4dx sync wait for them" {
	t4dx_start -o "config=$(t4dx_config_file "$QUIET")"
	mkdir "$ITEMS/d"
	printf 'x\n' >"$ITEMS/d/f"
	assert_pending_none "after close"
	chmod 600 "$ITEMS/d/f"
	assert_pending_some "chmod"
	sync "$ITEMS/d/f"                       # fsync(2) of the file
	assert_pending_none "fsync of the file"
	chown 1234:5678 "$ITEMS/d/f"
	touch -m -d @1000000000 "$ITEMS/d/f"
	assert_pending_some "chown, touch"
	sync "$ITEMS/d"                         # fsync(2) of its directory
	assert_pending_none "fsync of the directory"
	setfattr -n user.t4dx.kappa -v 0.75 "$ITEMS/d/f"
	chmod 640 "$ITEMS/d/f"
	assert_pending_some "setfattr"
	run "$T4DX" sync "$MNT"
	assert_success
	assert_pending_none "t4dx sync"
	t4dx_kill9
	t4dx_start -o "config=$(t4dx_config_file "$QUIET")"
	run stat -c '%a %u %g %Y' "$ITEMS/d/f"
	assert_output '640 1234 5678 1000000000'
	run t4dx_xattr kappa "$ITEMS/d/f"
	assert_output 0.75
}

@test "the commit timer makes a chmod durable within wal.commit_interval_ms, with no fsync" {
	t4dx_start -o "config=$(t4dx_config_file \
		'{"wal":{"commit_interval_ms":20},"health":{"interval_s":3600},"vector":{"embedder":"off"}}')"
	printf 'x\n' >"$ITEMS/f"
	chmod 600 "$ITEMS/f"
	setfattr -n user.t4dx.importance -v 0.5 "$ITEMS/f"
	t4dx_wait_ctl 10 stats '.wal_pending == 0'
	t4dx_kill9
	t4dx_start
	run stat -c %a "$ITEMS/f"
	assert_output 600
	run t4dx_xattr importance "$ITEMS/f"
	assert_output 0.5
}

@test "chmod without fsync, then SIGKILL: the mode is the old or the new one" {
	t4dx_start -o "config=$(t4dx_config_file "$QUIET")"
	printf 'x\n' >"$ITEMS/f"
	chmod 600 "$ITEMS/f"
	t4dx_kill9
	t4dx_start
	run stat -c '%a %s' "$ITEMS/f"
	assert_output --regexp '^(644|600) 2$'
}

@test ".ctl/durability and -o durability: fsync mode waits for nothing but fsync; back to close makes everything durable first" {
	run "$T4DXFS" -o durability=sometimes "$DATA" "$MNT"
	assert_failure
	assert_output --partial 'durability=sometimes'
	t4dx_start -o "config=$(t4dx_config_file "$QUIET")"
	run cat "$MNT/.ctl/durability"
	assert_output close
	echo fsync >"$MNT/.ctl/durability"
	run cat "$MNT/.ctl/durability"
	assert_output fsync
	run t4dx_ctl_echo durability sometimes
	assert_failure
	assert_output --partial 'Invalid argument'
	run cat "$MNT/.ctl/durability"
	assert_output fsync
	# close, mkdir and rename return before their records are durable
	printf 'one\n' >"$ITEMS/a"
	mkdir "$ITEMS/d"
	mv "$ITEMS/a" "$ITEMS/d/a"
	assert_pending_some "fsync mode"
	# an fsync of any file waits for everything so far
	printf 'two\n' >"$ITEMS/b"
	sync "$ITEMS/b"
	assert_pending_none "fsync of one file in fsync mode"
	printf 'three\n' >"$ITEMS/c"
	assert_pending_some "close in fsync mode"
	run "$T4DX" sync "$MNT"
	assert_success
	assert_pending_none "t4dx sync"
	printf 'four\n' >"$ITEMS/e"
	assert_pending_some "close in fsync mode"
	echo close >"$MNT/.ctl/durability"
	assert_pending_none "the switch back to close"
	run cat "$MNT/.ctl/durability"
	assert_output close
	printf 'five\n' >"$ITEMS/f"
	assert_pending_none "close in close mode"
	t4dx_kill9
	t4dx_start -o durability=fsync
	run cat "$MNT/.ctl/durability"
	assert_output fsync
	run cat "$ITEMS/d/a" "$ITEMS/b" "$ITEMS/c" "$ITEMS/e" "$ITEMS/f"
	assert_output $'one\ntwo\nthree\nfour\nfive'
}
