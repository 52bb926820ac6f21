#!/usr/bin/env bats
# symlink.bats - symbolic links in items/ (issue 14): stored durably with
# their target as content, read back by readlink, renamed and removed like
# files, and passed by as no memory (no t4dx attributes, never pruned);
# real trees with links go in with tar, cp -a and rsync -a.  (Hard links,
# FIFOs, sockets and device nodes stay refused: items.bats.)

load ../lib/mount

setup() {
	t4dx_setup
}

@test "ln -s: relative, absolute and dangling links read back, resolve, and show as links" {
	t4dx_start
	printf 'hello\n' >"$ITEMS/f"
	mkdir "$ITEMS/d"
	ln -s f "$ITEMS/rel"
	ln -s /nonexistent/x "$ITEMS/dangling"
	ln -s ../f "$ITEMS/d/up"
	ln -s d "$ITEMS/todir"
	run readlink "$ITEMS/rel"
	assert_output f
	run readlink "$ITEMS/dangling"
	assert_output /nonexistent/x
	run cat "$ITEMS/rel" "$ITEMS/d/up" "$ITEMS/todir/up"
	assert_output $'hello\nhello\nhello'
	run stat -c '%F %s %a' "$ITEMS/rel" "$ITEMS/dangling"
	assert_output $'symbolic link 1 777\nsymbolic link 14 777'
	# readdir says what each entry is
	run find "$ITEMS" -mindepth 1 -printf '%y %P\n'
	assert_line 'l rel'
	assert_line 'l d/up'
	assert_line 'l todir'
	assert_line 'f f'
	assert_line 'd d'
	run cat "$ITEMS/dangling"
	assert_failure
	# a name that is taken stays as it is
	run ln -s other "$ITEMS/rel"
	assert_failure
	assert_output --partial 'File exists'
	run readlink "$ITEMS/rel"
	assert_output f
	ln -sfn d "$ITEMS/rel"
	run readlink "$ITEMS/rel"
	assert_output d
}

@test "a link is durable when ln returns: it is there after SIGKILL, after a remount and after nrem" {
	t4dx_start
	printf 'x\n' >"$ITEMS/f"
	ln -s f "$ITEMS/a"
	ln -s "$(printf 'sp ace/é/%0200d' 0)" "$ITEMS/b"
	t4dx_kill9
	t4dx_start
	run readlink "$ITEMS/a" "$ITEMS/b"
	assert_output "f
$(printf 'sp ace/é/%0200d' 0)"
	echo nrem >"$MNT/.ctl/compact"
	t4dx_remount
	run readlink "$ITEMS/a"
	assert_output f
	run stat -c %F "$ITEMS/a"
	assert_output 'symbolic link'
	run "$T4DX" ls -l --force-readonly "$DATA"
	assert_success
	assert_line --regexp '^l.* a$'
}

@test "rename, unlink, lchown and lutimes of a link act on the link, not its target" {
	t4dx_start
	printf 'content\n' >"$ITEMS/f"
	ln -s f "$ITEMS/l"
	mkdir "$ITEMS/d"
	mv "$ITEMS/l" "$ITEMS/d/l2"
	run readlink "$ITEMS/d/l2"
	assert_output f
	assert_not_exist "$ITEMS/l"
	chown -h 1234:5678 "$ITEMS/d/l2"
	touch -h -d '2001-02-03 04:05:06 UTC' "$ITEMS/d/l2"
	run stat -c '%u:%g %Y' "$ITEMS/d/l2" "$ITEMS/f"
	assert_line --index 0 "1234:5678 981173106"
	refute_line --index 1 --partial "1234:5678"
	t4dx_remount
	run stat -c '%u:%g %Y' "$ITEMS/d/l2"
	assert_output "1234:5678 981173106"
	# a link to a directory: rm -r removes the link, not what it points at
	ln -s d "$ITEMS/dl"
	rm -r "$ITEMS/dl"
	assert_not_exist "$ITEMS/dl"
	assert_link_exists "$ITEMS/d/l2"
	rm "$ITEMS/d/l2"
	assert_not_exist "$ITEMS/d/l2"
	run cat "$ITEMS/f"
	assert_output content
	rmdir "$ITEMS/d"
}

@test "a link has no t4dx attributes and is never pruned" {
	local cfg
	cfg=$(t4dx_config_file '{"compaction":{"prune_min_kappa":1,"prune_max_importance":1}}')
	t4dx_start -o "config=$cfg"
	printf 'a memory\n' >"$ITEMS/m"
	ln -s m "$ITEMS/l"
	run getfattr -h --absolute-names -d -m - "$ITEMS/l"
	refute_output --partial 'user.t4dx'
	run getfattr -n user.t4dx.kappa "$ITEMS/m"
	assert_success
	echo prune >"$MNT/.ctl/compact"
	# every memory was below the bounds and went; the link stays
	assert_not_exist "$ITEMS/m"
	run readlink "$ITEMS/l"
	assert_output m
}

@test "targets: up to PATH_MAX - 1 bytes kept exactly; longer ones are refused" {
	t4dx_start
	local long
	long=$(printf 'x%.0s' {1..4095})
	ln -s "$long" "$ITEMS/long"
	run readlink "$ITEMS/long"
	assert_output "$long"
	run ln -s "${long}y" "$ITEMS/longer"
	assert_failure
	assert_not_exist "$ITEMS/longer"
	run ls -A "$ITEMS"
	assert_output long
}

# tree_of DIR: each entry's type, path, target (links), mode and size (not
# of directories: theirs is the filesystem's own)
tree_of() {
	(cd "$1" && find . -mindepth 1 \( -type d -printf '%y %p %m\n' \) -o \
		-printf '%y %p %l %m %s\n' | LC_ALL=C sort)
}

# make_tree DIR: files, directories and links, relative and absolute
make_tree() {
	mkdir -p "$1/src/sub" "$1/docs"
	printf 'main\n' >"$1/src/main.c"
	printf 'sub\n' >"$1/src/sub/s.h"
	printf 'readme\n' >"$1/docs/README"
	chmod 600 "$1/docs/README"
	ln -s ../docs/README "$1/src/README"
	ln -s sub "$1/src/inc"
	ln -s /usr/share "$1/abs"
	ln -s missing "$1/docs/dangling"
}

@test "tar -x, cp -a and rsync -a of a tree with links give the same tree" {
	t4dx_start
	make_tree "$T4DX_TMP/orig"
	tree_of "$T4DX_TMP/orig" >"$T4DX_TMP/want"
	tar -C "$T4DX_TMP/orig" -cf "$T4DX_TMP/t.tar" .
	mkdir "$ITEMS/tar" "$ITEMS/cp"
	tar -C "$ITEMS/tar" -xf "$T4DX_TMP/t.tar"
	cp -a "$T4DX_TMP/orig/." "$ITEMS/cp/"
	rsync -a "$T4DX_TMP/orig/" "$ITEMS/rsync/"
	local d
	for d in tar cp rsync; do
		run diff "$T4DX_TMP/want" <(tree_of "$ITEMS/$d")
		assert_success
	done
	# and back out again, after a restart
	t4dx_remount
	rsync -a "$ITEMS/rsync/" "$T4DX_TMP/back/"
	run diff "$T4DX_TMP/want" <(tree_of "$T4DX_TMP/back")
	assert_success
}
