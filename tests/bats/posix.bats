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

# assert_prefix_of WANT: the output of the last run is a prefix of WANT
# (possibly empty).  A descriptor opened before a commit reads its own
# version, but through the page cache, which the kernel cuts at the file's
# current size: it may see less of its version, never other bytes.
assert_prefix_of() {
	[[ $1 == "$output"* ]] || fail "'$output' is not a prefix of '$1'"
}

@test "a reader of an old version does not leave its bytes in the cache for later readers" {
	t4dx_start
	local f=$ITEMS/f old='the first version, which is the longer one'
	printf '%s\n' "$old" >"$f"
	exec 7<"$f"
	printf 'version 2\n' >"$f"
	# fd 7 reads from the version it opened, after the commit
	run cat <&7
	assert_prefix_of "$old"
	# while fd 7 is still open, and after it closed
	run cat "$f"
	assert_output 'version 2'
	exec 7<&-
	run cat "$f"
	assert_output 'version 2'
	# and again after one more commit
	old='version three, long again, longer than the first'
	printf '%s\n' "$old" >"$f"
	exec 7<"$f"
	printf 'v4\n' >"$f"
	run cat <&7
	assert_prefix_of "$old"
	exec 7<&-
	run cat "$f"
	assert_output 'v4'
	run cat "$f"
	assert_output 'v4'
}

@test "readers opened after a commit see the new version while an old reader stays open" {
	t4dx_start
	local f=$ITEMS/f old=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
	printf '%s\n' "$old" >"$f"
	exec 7<"$f"
	head -c 4 <&7 >/dev/null        # the old version is in use
	printf 'B\n' >"$f"
	exec 8<"$f"
	run cat <&8
	assert_output 'B'
	run cat <&7
	assert_prefix_of "${old:4}"
	run cat "$f"
	assert_output 'B'
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

@test "fsync after writes through a descriptor survives SIGKILL before its close" {
	t4dx_start
	local f=$ITEMS/f
	printf 'old content\n' >"$f"
	exec 8>"$f"
	printf 'new' >&8
	run sync "$f"
	assert_success
	t4dx_kill9
	exec 8>&-
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
