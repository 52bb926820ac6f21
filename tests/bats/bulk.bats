#!/usr/bin/env bats
# bulk.bats - bulk loads and when their changes are durable (issue 14):
# chmod, chown, utimens and setxattr do not wait for the disk, fsync of
# the file or its directory and `t4dx sync` do; the commit timer writes
# what nobody waits for; durability=fsync (mount option, .ctl/durability);
# and SIGKILL in the middle of a `tar -x` into items/ in both modes.

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

@test "fsync mode: an fsync of MOUNT/ itself (sync MOUNT) waits for everything, as of any directory; SIGKILL after it loses nothing" {
	t4dx_start -o durability=fsync -o "config=$(t4dx_config_file "$QUIET")"
	printf 'one\n' >"$ITEMS/a"
	mkdir "$ITEMS/d"
	assert_pending_some "fsync mode"
	# README: fsync() of any file or directory waits for everything
	sync "$MNT"                             # fsync(2) of the mount's root
	assert_pending_none "fsync of MOUNT/ in fsync mode"
	t4dx_kill9
	t4dx_start
	run cat "$ITEMS/a"
	assert_output one
	[[ -d $ITEMS/d ]] || fail "mkdir before sync MOUNT lost"
}

@test "default mode: an fsync of MOUNT/ (sync MOUNT) waits for every change, as one of MOUNT/items/ does" {
	t4dx_start -o "config=$(t4dx_config_file "$QUIET")"
	printf 'x\n' >"$ITEMS/f"
	chmod 600 "$ITEMS/f"
	assert_pending_some "chmod"
	sync "$MNT"
	assert_pending_none "fsync of MOUNT/"
}

# ---- SIGKILL in the middle of a tar -x --------------------------------------

# make_tree: $T4DX_TMP/tree.tar, /usr/include/linux with modes, owners and
# mtimes of its own (so that each must come through), and ref/, the same
# extracted on the local disk.
make_tree() {
	[[ -d /usr/include/linux ]] || skip "/usr/include/linux is missing"
	local src=$T4DX_TMP/src
	mkdir "$src"
	cp -r /usr/include/linux "$src/linux"
	find "$src/linux" -type f -print0 | perl -0ne '
		chomp; $i++;
		chmod((0600, 0644, 0755, 0640)[$i % 4], $_) or die "$_: $!";
		chown(1000 + $i % 3, 2000 + $i % 5, $_) or die "$_: $!";
		utime(1000000000 + $i, 1100000000 + 7 * $i, $_) or die "$_: $!";'
	tar -C "$src" -cf "$T4DX_TMP/tree.tar" linux
	mkdir "$T4DX_TMP/ref"
	tar -C "$T4DX_TMP/ref" -xpf "$T4DX_TMP/tree.tar"
	NMEMBERS=$(tar -tf "$T4DX_TMP/tree.tar" | wc -l)
}

# members_within BYTES: how many members of tree.tar tar has wholly read,
# and so extracted, once it has read BYTES of it (a member ends where the
# next one's header starts; one record of margin).
members_within() {
	tar -tRf "$T4DX_TMP/tree.tar" | awk -v lim="$1" '
		/^block [0-9]+:/ { b = substr($2, 1, length($2) - 1) + 0
			if (n && (b * 512) + 10240 <= lim) done = n - 1 + 1
			n++ }
		END { print done + 0 }'
}

# start_tar: tar -xv into items/, reading the archive from a pipe this
# shell feeds (fd 7) so that the test decides how far it gets; the names
# go, a line each as tar starts the member, to $T4DX_TMP/names.
start_tar() {
	mkfifo "$T4DX_TMP/feed"
	(cd "$ITEMS" && exec stdbuf -oL tar -xvpf - <"$T4DX_TMP/feed" \
		>"$T4DX_TMP/names" 2>"$T4DX_TMP/tar.err") &
	TAR_PID=$!
	t4dx_track "$TAR_PID"
	exec 7>"$T4DX_TMP/feed"
	FED=0
}

# feed_upto BYTES: give tar the archive up to BYTES and wait until it has
# started every member those bytes hold whole.
feed_upto() {
	tail -c +$((FED + 1)) "$T4DX_TMP/tree.tar" | head -c $(($1 - FED)) >&7
	FED=$1
	local want
	want=$(members_within "$1")
	((want > 10)) || fail "only $want members in the first $1 bytes"
	t4dx_wait_for 60 names_at_least "$want" ||
		fail "tar started $(wc -l <"$T4DX_TMP/names") of $want members: $(cat "$T4DX_TMP/tar.err")"
}

names_at_least() {
	(($(wc -l <"$T4DX_TMP/names") >= $1))
}

# end_tar: after the kill, let tar see the end of its input and exit.
end_tar() {
	exec 7>&-
	t4dx_wait_children 30 "$TAR_PID" || true
}

# check_done N META: the first N members tar started are in items/ as in
# ref/: directories exist, files have their content and, for the first
# META of them, mode, owner and mtime.
check_done() {
	local n=$1 meta=$2 i=0 name got want
	while IFS= read -r name; do
		i=$((i + 1))
		((i <= n)) || break
		if [[ -d $T4DX_TMP/ref/$name ]]; then
			[[ -d $ITEMS/$name ]] || fail "directory $name (member $i) is lost"
			continue
		fi
		cmp -s "$T4DX_TMP/ref/$name" "$ITEMS/$name" ||
			fail "$name (member $i of $n acknowledged) is lost or differs"
		if ((i <= meta)); then
			want=$(stat -c '%a %u %g %Y' "$T4DX_TMP/ref/$name")
			got=$(stat -c '%a %u %g %Y' "$ITEMS/$name")
			[[ $got == "$want" ]] ||
				fail "$name (member $i): mode owner group mtime $got, want $want"
		fi
	done <"$T4DX_TMP/names"
	((i >= n)) || fail "only $i names, want $n"
}

# check_whole: every file in items/ is one that tar wrote, whole (a
# file's content is one record: never a part of it).
check_whole() {
	local f rel
	while IFS= read -r -d '' f; do
		rel=${f#"$ITEMS"/}
		cmp -s "$T4DX_TMP/ref/$rel" "$f" || fail "$rel is not whole after the crash"
	done < <(find "$ITEMS" -type f -print0)
}

@test "SIGKILL in the middle of tar -x, default mode: every file tar closed is there whole, with mode, owner and mtime once a later close returned" {
	make_tree
	t4dx_start -o "config=$(t4dx_config_file '{"vector":{"embedder":"off"}}')"
	start_tar
	local size
	size=$(stat -c %s "$T4DX_TMP/tree.tar")
	feed_upto $((size / 2))
	local c
	c=$(wc -l <"$T4DX_TMP/names")
	((c < NMEMBERS)) || fail "tar got through all $NMEMBERS members"
	t4dx_kill9
	end_tar
	t4dx_start
	# tar announces a member before extracting it: the first c - 1 are
	# done (closed); the metadata of each of them but the last was
	# followed by a close that returned, which made it durable too
	check_done $((c - 1)) $((c - 2))
	check_whole
}

@test "SIGKILL in the middle of tar -x, durability=fsync: everything before the last t4dx sync is there whole with its metadata" {
	make_tree
	t4dx_start -o durability=fsync -o "config=$(t4dx_config_file \
		'{"wal":{"commit_interval_ms":60000},"health":{"interval_s":3600},"vector":{"embedder":"off"}}')"
	start_tar
	local size s
	size=$(stat -c %s "$T4DX_TMP/tree.tar")
	feed_upto $((size / 3))
	s=$(wc -l <"$T4DX_TMP/names")
	assert_pending_some "tar in fsync mode"
	run "$T4DX" sync "$MNT"
	assert_success
	feed_upto $((2 * size / 3))
	(($(wc -l <"$T4DX_TMP/names") < NMEMBERS)) || fail "tar got through all members"
	t4dx_kill9
	end_tar
	t4dx_start
	check_done $((s - 1)) $((s - 1))
	check_whole
}
