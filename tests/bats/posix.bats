#!/usr/bin/env bats
# posix.bats - what programs expect of a local filesystem, found missing by
# a review and by real programs on the mount (issue 9): readers never see
# bytes of a version that is not the one they opened, fsync makes whatever
# the file's writers changed durable, and a release racing a truncate or
# utimens of the same file does not free the buffer under the other.

load ../lib/mount

setup() {
	t4dx_setup
}

# fd1_is PID PATH: process PID has PATH open as its standard output
fd1_is() {
	[[ $(readlink "/proc/$1/fd/1" 2>/dev/null) == "$2" ]]
}

@test "an open reader reads the newest committed version; nothing older stays in the cache" {
	t4dx_start
	local f=$ITEMS/f
	printf 'the first version, which is the longer one\n' >"$f"
	exec 7<"$f"
	printf 'version 2\n' >"$f"
	# as on a local filesystem, fd 7 reads what the file holds now
	run cat <&7
	assert_output 'version 2'
	run cat "$f"
	assert_output 'version 2'
	exec 7<&-
	run cat "$f"
	assert_output 'version 2'
	# a reader that read the old version before the commit
	printf 'version three, long again, longer than the first\n' >"$f"
	exec 7<"$f"
	run head -c 7 <&7
	assert_output 'version'
	printf 'v4\n' >"$f"
	run cat "$f"
	assert_output 'v4'
	exec 7<&-
	run cat "$f"
	assert_output 'v4'
}

@test "a reader of a file replaced by a rename keeps the file it opened" {
	t4dx_start
	local f=$ITEMS/f
	printf 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n' >"$f"
	exec 7<"$f"
	head -c 4 <&7 >/dev/null
	printf 'B\n' >"$ITEMS/f.new"
	mv "$ITEMS/f.new" "$f"
	exec 8<"$f"
	run cat <&8
	assert_output 'B'
	run cat <&7
	assert_output 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'
	exec 7<&- 8<&-
	run cat "$f"
	assert_output 'B'
}

@test "fsync of a file emptied by an O_TRUNC open survives SIGKILL" {
	t4dx_start
	local f=$ITEMS/f
	printf 'old content\n' >"$f"
	exec 8>"$f"                     # O_TRUNC, nothing written, kept open
	run sync "$f"                   # fsync through another descriptor
	assert_success
	t4dx_kill9
	exec 8>&-
	t4dx_start
	run stat -c %s "$f"
	assert_output 0
}

@test "fsync of a directory keeps a file created in it and still open, after SIGKILL" {
	command -v perl >/dev/null || skip "perl is missing"
	t4dx_start
	local ready=$T4DX_TMP/ready
	mkdir "$ITEMS/d"
	# one open(O_CREAT) each, never closed: no flush commits the files
	# (a shell's `exec 8>f` closes a duplicate at once, which does)
	perl -e 'use Fcntl; for (@ARGV[0, 1]) { sysopen(my $h, $_,
		O_WRONLY | O_CREAT | O_EXCL) or die; push @::h, $h }
		open(my $m, ">", $ARGV[2]); close $m; sleep 60' \
		"$ITEMS/new" "$ITEMS/d/new" "$ready" 3>&- &
	local holder=$!
	t4dx_track "$holder"
	t4dx_wait_for 10 test -e "$ready" || fail "the holder did not start"
	run sync "$ITEMS" "$ITEMS/d"    # fsync of both directories
	assert_success
	t4dx_kill9
	kill "$holder"
	t4dx_wait_children 10 "$holder" || true
	t4dx_start
	assert_file_exists "$ITEMS/new"
	assert_file_exists "$ITEMS/d/new"
}

@test "fsync through a read-only descriptor commits what another process wrote and has not closed" {
	command -v perl >/dev/null || skip "perl is missing"
	t4dx_start
	local f=$ITEMS/f ready=$T4DX_TMP/ready
	printf 'old content\n' >"$f"
	# the writer keeps its descriptor: no close, so no flush, commits it
	perl -e 'use Fcntl; sysopen(my $h, $ARGV[0], O_WRONLY | O_TRUNC) or die;
		syswrite($h, "new") == 3 or die; open(my $m, ">", $ARGV[1]);
		close $m; sleep 60' "$f" "$ready" 3>&- &
	local writer=$!
	t4dx_track "$writer"
	t4dx_wait_for 10 test -e "$ready" || fail "the writer did not start"
	run sync "$f"
	assert_success
	t4dx_kill9
	kill "$writer"
	t4dx_wait_children 10 "$writer" || true
	t4dx_start
	run cat "$f"
	assert_output 'new'
}

@test "an append racing a utimens of the same file: no use after free, both kept" {
	# the daemon waits between the last release and its commit, where a
	# concurrent setattr used to commit and free the same buffer
	T4DX_TEST_RELEASE_PAUSE_MS=20 t4dx_start
	local f=$ITEMS/log i pids=()
	: >"$f"
	for ((i = 0; i < 20; i++)); do
		echo "line $i" >>"$f" &
		pids+=($!)
		touch -m -d "@$((1000000 + i))" "$f"
		t4dx_wait_children 30 "${pids[@]}" || fail "append $i: ${T4DX_FAILED[*]}"
		pids=()
	done
	t4dx_alive "$T4DX_PID" || fail "the daemon died: $(t4dx_logs)"
	run wc -l <"$f"
	assert_output 20
	t4dx_stop
}

# mtime_of PATH: seconds.nanoseconds of PATH's mtime; ctime_of likewise.
mtime_of() { stat -c %.9Y -- "$1"; }
ctime_of() { stat -c %.9Z -- "$1"; }

# assert_moved PATH: PATH's mtime and ctime are past 1000 (set by touch -d
# @1000 before the change), i.e. the change moved them.
assert_moved() {
	local m c
	m=$(mtime_of "$1") c=$(ctime_of "$1")
	[[ ${m%.*} -gt 1000 ]] || fail "$1: mtime $m did not move"
	[[ ${c%.*} -gt 1000 ]] || fail "$1: ctime $c did not move"
}

@test "a directory's mtime and ctime move when entries are created, removed or renamed, and survive restart and SIGKILL" {
	t4dx_start
	local a=$ITEMS/a b=$ITEMS/b
	mkdir "$a" "$b"
	touch -d @1000 "$a"
	echo x >"$a/f"
	assert_moved "$a"
	touch -d @1000 "$a"
	mkdir "$a/sub"
	assert_moved "$a"
	touch -d @1000 "$a"
	rmdir "$a/sub"
	assert_moved "$a"
	touch -d @1000 "$a" "$b"
	mv "$a/f" "$b/g"
	assert_moved "$a"
	assert_moved "$b"
	touch -d @1000 "$b"
	rm "$b/g"
	assert_moved "$b"
	touch -d @1000 "$ITEMS"
	mkdir "$ITEMS/c"
	assert_moved "$ITEMS"
	before=$(mtime_of "$a")
	t4dx_remount
	assert_equal "$(mtime_of "$a")" "$before"
	touch -d @1000 "$a"
	mkdir "$a/after"                # durable when mkdir returns
	local want
	want=$(mtime_of "$a")
	t4dx_kill9
	t4dx_start
	assert_equal "$(mtime_of "$a")" "$want"
}

@test "a set-group-ID directory gives new entries its group, and new directories its bit" {
	t4dx_start
	local g=$ITEMS/g
	mkdir "$g"
	chgrp 4242 "$g"
	chmod 2775 "$g"
	touch "$g/f"
	mkdir "$g/d"
	run stat -c '%g %A' "$g/f" "$g/d"
	assert_line --index 0 '4242 -rw-r--r--'
	assert_line --index 1 '4242 drwxr-sr-x'
	# outside it, the creator's group
	touch "$ITEMS/h"
	run stat -c %g "$ITEMS/h"
	assert_output "$(id -g)"
}

@test "a write or truncate by another user clears set-user-ID and set-group-ID; root's keeps them" {
	command -v setpriv >/dev/null || skip "setpriv is missing"
	t4dx_start -o allow_other
	local f=$ITEMS/prog g=$ITEMS/prog2 k=$ITEMS/kept
	chmod 0711 "$T4DX_TMP"         # nobody must reach the mount
	chmod 0777 "$ITEMS"
	printf 'program\n' >"$f"
	printf 'program\n' >"$g"
	printf 'program\n' >"$k"
	chmod 6777 "$f" "$g" "$k"
	setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "echo more >>'$f'" ||
		fail "the write as nobody failed"
	run stat -c %a "$f"
	assert_output 777
	setpriv --reuid=65534 --regid=65534 --clear-groups truncate -s 2 "$g" ||
		fail "the truncate as nobody failed"
	run stat -c %a "$g"
	assert_output 777
	echo more >>"$k"
	run stat -c %a "$k"
	assert_output 6777
	# and after a restart
	t4dx_remount -o allow_other
	run stat -c %a "$f" "$k"
	assert_line --index 0 777
	assert_line --index 1 6777
}

@test "truncate of a file another process holds open for writing is seen and durable when it returns" {
	t4dx_start
	local f=$ITEMS/f
	printf 'x' >"$f"
	# a writer, open, nothing written, in a process of its own: a
	# descriptor this shell held would be closed (a flush, which commits)
	# by every child that inherits it
	sleep 600 >>"$f" &
	local holder=$!
	t4dx_track "$holder"
	t4dx_wait_for 10 fd1_is "$holder" "$f"
	# truncate(2) by name, not coreutils truncate (which opens the file)
	perl -e 'truncate($ARGV[0], 75) or die "$!"' "$f"
	run stat -c %s "$f"
	assert_output 75
	# every reader reads what stat says
	run bash -c 'cat "$1" | wc -c' _ "$f"
	assert_output 75
	t4dx_kill9
	kill "$holder"
	wait "$holder" || true
	t4dx_start
	run stat -c %s "$f"
	assert_output 75
	run bash -c 'head -c 1 "$1"' _ "$f"
	assert_output 'x'
}

@test "a directory's link count is 2 + its subdirectories, through mkdir, rmdir, rename and a restart" {
	t4dx_start
	mkdir -p "$ITEMS/a/b" "$ITEMS/a/c" "$ITEMS/d"
	touch "$ITEMS/a/file"
	run stat -c %h "$ITEMS/a" "$ITEMS/a/b" "$ITEMS/d" "$ITEMS"
	assert_output $'4\n2\n2\n4'
	rmdir "$ITEMS/a/c"
	mv "$ITEMS/a/b" "$ITEMS/d/b"
	run stat -c %h "$ITEMS/a" "$ITEMS/d"
	assert_output $'2\n3'
	# a directory renamed over an empty one
	mkdir "$ITEMS/e" "$ITEMS/d/x"
	mv -T "$ITEMS/e" "$ITEMS/d/x"
	run stat -c %h "$ITEMS/d" "$ITEMS"
	assert_output $'4\n4'
	# what ls -l shows (from a listing) agrees with stat
	run bash -c 'ls -ln "$1" | awk "\$NF == \"d\" { print \$2 }"' _ "$ITEMS"
	assert_output 4
	t4dx_stop
	t4dx_start
	run stat -c %h "$ITEMS/a" "$ITEMS/d" "$ITEMS/d/b" "$ITEMS"
	assert_output $'2\n4\n2\n4'
	# find's count of subdirectories matches the link counts
	local dirs
	dirs=$(find "$ITEMS" -mindepth 1 -maxdepth 1 -type d | wc -l)
	run stat -c %h "$ITEMS"
	assert_output $((2 + dirs))
}

@test "a close that finds its writes in another descriptor's commit waits until that commit is durable" {
	local flag=$T4DX_TMP/slow
	t4dx_start_slowsync "$flag"
	printf 'x' >"$ITEMS/f"
	run "$T4DX_BUILDDIR/tests/twowriters" "$ITEMS/f" "$flag"
	assert_success
	run cat "$ITEMS/f"
	assert_output 'xab'
}

@test "a file emptied by an O_TRUNC open reads as empty at once, for new and open readers" {
	t4dx_start
	local f=$ITEMS/f
	printf 'old content\n' >"$f"
	exec 7<"$f"
	# the truncating open is held by a process of its own (the kernel
	# releases a closed file later, asynchronously: the same window)
	sleep 600 >"$f" &
	local holder=$!
	t4dx_track "$holder"
	t4dx_wait_for 10 fd1_is "$holder" "$f"
	run stat -c %s "$f"
	assert_output 0
	run cat "$f"
	assert_output ''
	run cat <&7
	assert_output ''
	kill "$holder"
	wait "$holder" || true
	run cat "$f"
	assert_output ''
	exec 7<&-
	t4dx_stop
	t4dx_start
	run stat -c %s "$f"
	assert_output 0
}

@test "a file's mtime is the time of its last write, not of its close" {
	t4dx_start
	local f=$ITEMS/f t0 t1 m
	t0=$(_t4dx_now_us)
	# the writer keeps the file open a while after its write (the pause
	# is the scenario, not a wait for something)
	perl -e 'open(my $h, ">", $ARGV[0]) or die; syswrite($h, "data");
		select(undef, undef, undef, 1.5); close($h) or die' "$f"
	t1=$(_t4dx_now_us)
	m=$(stat -c %.6Y "$f")
	m=${m/./}
	((m - t0 < 1000000)) || fail "mtime $m is not the write's time (started $t0)"
	((t1 - m > 1000000)) || fail "mtime $m is the close's time ($t1)"
	t4dx_stop
	t4dx_start
	run stat -c %.6Y "$f"
	assert_output "${m:0:-6}.${m: -6}"
}

@test "truncate by name of a file whose open writer failed with EFBIG truncates the stored file" {
	t4dx_start
	local f=$ITEMS/f st=$T4DX_TMP/efbig
	printf 'hello' >"$f"
	# a writer whose write past the item limit failed, kept open
	perl -e 'use Fcntl; sysopen(my $h, $ARGV[0], O_WRONLY) or die;
		sysseek($h, 17 << 20, 0);
		my $r = syswrite($h, "x") ? "written" : "$!";
		open(my $s, ">", $ARGV[1]); print $s $r;
		close($s); sleep 600' "$f" "$st" &
	local holder=$!
	t4dx_track "$holder"
	t4dx_wait_for 10 test -s "$st"
	run cat "$st"
	assert_output 'File too large'
	run perl -e 'truncate($ARGV[0], 2) or die "$!\n"' "$f"
	assert_success
	kill "$holder"
	wait "$holder" || true
	run cat "$f"
	assert_output 'he'
}
