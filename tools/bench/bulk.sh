# bulk.sh - the bulk-load part of the t4dx benchmark (issue 14), sourced
# by run-bench.sh, whose helpers it uses (rec, note, median, t4dx_stop...).
#
# What a new user does first: move a tree of many small files in.  For
# each tree of BULK_TREES (a tarball of it made at bench time, and the
# same tree extracted once to a plain directory as the source):
#   tar -xf TARBALL, rsync -a SRC, cp -a SRC    into an empty directory
# and one large file, written with `dd bs=1M` from a file of text in the
# page cache and read back with the caches dropped (BENCH_ONLY=dd: that
# file alone, no trees).  Each row on:
#   t4dx         the default mode (close returns once the file is durable)
#   t4dx-fsync   -o durability=fsync, then a final sync: `t4dx sync
#                MOUNT` if the tool has it, else fsync of MOUNT/items
#                (coreutils sync on a directory); "n/a" where t4dxfs does
#                not know the option
#   ext4+sync    the same command, then `sync -f` (syncfs) of its file
#                system
#   ext4-fdsync  every file durable before the next: treecopy -s (an
#                open/write/fchown/fchmod/futimens/fdatasync/close per
#                file; GNU tar has no --fsync) for tar and cp, rsync -a
#                --fsync for rsync (treecopy where rsync lacks it), dd
#                conv=fdatasync for dd
#   nullfs       the no-I/O FUSE ceiling (no final sync: nothing to sync)
# Every t4dx row runs on a fresh store (config: the defaults, the WAL
# archive budget raised so that none of the log is deleted during a row,
# limits raised for the large file) and counts, from .ctl/stats before
# and after (the final sync included), the fdatasyncs per file (regular
# files and symlinks) and the WAL bytes (live + archive) per content byte
# (file contents and symlink targets).  A row whose result is not the
# source tree (paths, types, modes, owners, mtimes, sizes, contents,
# symlink targets) or whose command fails is FAILED.  The systems alternate, the order rotating
# each round; the table has the medians.
# What t4dx adds over FUSE itself, per tree row: the time over nullfs per
# file, the FUSE requests per file that t4dx and nullfs received (their op
# counters; t4dx answers the xattr requests that nullfs refuses with
# ENOSYS, which stops the kernel from asking), by operation under the
# table, and for each time goal whether nullfs alone leaves room under
# it ("FUSE floor"): where it does not, no FUSE design meets the goal on
# this machine.
#
# ext4: the private directory if it is on ext4, else (or with
# BULK_EXT4_LOOP=1) an ext4 image made at bench time on a loop device,
# unmounted and detached on every path (bulk_cleanup, called from
# run-bench.sh's trap).
#
# Environment (besides run-bench.sh's):
#   BULK_TREES="DIR..."  the trees (default "/usr/include/linux
#                        /usr/include"; quick: /usr/include/linux)
#   BULK_ROUNDS=N        rounds (default 3; quick 1)
#   BULK_DD_MIB=N        the large file (default 1024; quick 64); capped
#                        for every system at what limits.max_item_bytes
#                        allows if t4dxfs refuses more
#   BULK_EMBEDDER=off    run t4dx with vector.embedder off (default: the
#                        default configuration, the builtin embedder on)
#   BULK_EXT4_LOOP=1     use a loop ext4 image even on ext4
# The large file's rows also count the FUSE WRITE and READ requests that
# t4dx and nullfs received (their op counters), as KiB per request: what
# the kernel sends at a time (max_write, readahead; README Large files).
# t4dx's READ count includes the one or two READs of .ctl/metrics that
# take the counts.
# (ROUNDS, TMP, MNT, NMNT, DATA, T4DXFS, NULLFS... are run-bench.sh's)
# shellcheck shell=bash disable=SC2317,SC2153

if [[ ${BENCH_QUICK:-0} == 1 ]]; then
	BULK_TREES=${BULK_TREES:-/usr/include/linux}
	BULK_ROUNDS=${BULK_ROUNDS:-1}
	BULK_DD_MIB=${BULK_DD_MIB:-64}
else
	BULK_TREES=${BULK_TREES:-/usr/include/linux /usr/include}
	BULK_ROUNDS=${BULK_ROUNDS:-3}
	BULK_DD_MIB=${BULK_DD_MIB:-1024}
fi
BULK_SYSTEMS=(t4dx t4dx-fsync ext4-sync ext4-fdsync nullfs)
BULK_DD_ONLY=0      # 1: only the large file (BENCH_ONLY=dd)
[[ ${BENCH_ONLY:-} == dd ]] && BULK_DD_ONLY=1
BULK_EXT=           # the ext4 directory
BULK_EXT_DESC=
BULK_LOOP_IMG=      # the loop image, if one was made
BULK_FSYNC=0        # 1: t4dxfs takes -o durability=fsync
BULK_FSYNC_WHY=
BULK_SYNC_HOW=
BULK_DD_EFF=        # MiB the large file has on every system
BULK_DD_CAPPED=0    # 1: BULK_DD_EFF is below BULK_DD_MIB
BULK_NTREES=0
BULK_MEASURED=0     # 1: bulk_measure got as far as the rows
BULK_RSYNC_FSYNC=0
BULK_TOOL=
BULK_NSTORE=0
declare -a BULK_NAME BULK_DIR BULK_SHAPE BULK_DIGEST

# bulk_cleanup: unmount the loop ext4 and detach its device (from the
# trap of run-bench.sh, before its own unmounts).
bulk_cleanup() {
	local dev
	[[ -n $BULK_LOOP_IMG ]] || return 0
	if [[ -n $BULK_EXT ]] && is_mounted "$BULK_EXT"; then
		umount "$BULK_EXT" 2>/dev/null || umount -l "$BULK_EXT" 2>/dev/null
	fi
	# a mount -o loop detaches at umount (autoclear); make sure
	while read -r dev; do
		[[ -n $dev ]] && losetup -d "$dev" 2>/dev/null
	done < <(losetup -n -O NAME -j "$BULK_LOOP_IMG" 2>/dev/null)
	return 0
}

# bulk_ext4_setup: BULK_EXT, an empty directory on ext4.
bulk_ext4_setup() {
	local fstype src mib
	fstype=$(findmnt -n -o FSTYPE -T "$TMP" 2>/dev/null)
	src=$(findmnt -n -o SOURCE -T "$TMP" 2>/dev/null)
	if [[ $fstype == ext4 && ${BULK_EXT4_LOOP:-0} != 1 ]]; then
		BULK_EXT=$TMP/bulk-ext4
		mkdir -p "$BULK_EXT" || harness_fail "mkdir $BULK_EXT"
		BULK_EXT_DESC="$TMP (ext4 on $src)"
		return 0
	fi
	# an image for every round's trees (6 copies each, 4 KiB a file at
	# least) and two large files, plus room
	mib=$(awk -v s="$BULK_TREE_BYTES" -v n="$BULK_TREE_ENTRIES" -v d="$BULK_DD_MIB" \
		-v r="$BULK_ROUNDS" \
		'BEGIN { printf "%d", ((s + n * 4096) * 6 * 1.3 / 1048576 + 2 * d) * r + 512 }')
	BULK_LOOP_IMG=$TMP/ext4.img
	BULK_EXT=$TMP/bulk-ext4
	mkdir -p "$BULK_EXT" || harness_fail "mkdir $BULK_EXT"
	if ((EUID != 0)) || ! command -v mkfs.ext4 >/dev/null; then
		BULK_LOOP_IMG=
		BULK_EXT_DESC="$TMP ($fstype on $src: not ext4, and no loop ext4 without root and mkfs.ext4)"
		note "bulk: the ext4 columns are on $fstype"
		return 0
	fi
	if ! truncate -s "${mib}M" "$BULK_LOOP_IMG" ||
		! mkfs.ext4 -q -F "$BULK_LOOP_IMG" >"$TMP/mkfs.log" 2>&1 ||
		! mount -o loop "$BULK_LOOP_IMG" "$BULK_EXT" 2>>"$TMP/mkfs.log"; then
		note "bulk: no loop ext4 ($(head -c 200 "$TMP/mkfs.log")): the ext4 columns are on $fstype"
		bulk_cleanup
		rm -f "$BULK_LOOP_IMG"
		BULK_LOOP_IMG=
		BULK_EXT_DESC="$TMP ($fstype on $src)"
		return 0
	fi
	BULK_EXT_DESC="a $mib MiB ext4 image on $(findmnt -n -o SOURCE "$BULK_EXT") (the private directory is $fstype)"
}

# bulk_t4dx_start OPT...: a t4dxfs -f on DATA at MNT, ready; 1 (and its
# log in T4DX_LOG) if it does not mount.  Unlike t4dx_start it notices a
# daemon that exits at once (a refused option) instead of waiting for a
# mount that never comes, and it leaves T4DX_OK alone.
bulk_t4dx_start() {
	local deadline
	T4DX_NSTART=$((T4DX_NSTART + 1))
	T4DX_LOG=$TMP/t4dxfs.$T4DX_NSTART.log
	env --default-signal=INT "$T4DXFS" -f "$@" "$DATA" "$MNT" </dev/null \
		>"$T4DX_LOG" 2>&1 &
	T4DX_PID=$!
	deadline=$(($(now_us) + 120000000))
	until is_mounted "$MNT" && [[ -d $MNT/items ]]; do
		if ! alive "$T4DX_PID" || (($(now_us) >= deadline)); then
			kill -TERM "$T4DX_PID" 2>/dev/null
			wait_dead "$T4DX_PID" 10 || kill -KILL "$T4DX_PID" 2>/dev/null
			wait "$T4DX_PID" 2>/dev/null
			is_mounted "$MNT" && fusermount3 -u -z "$MNT" 2>/dev/null
			T4DX_PID=
			return 1
		fi
		sleep 0.02
	done
	return 0
}

# bulk_fresh SYS: a fresh store, mounted in SYS's mode.  The stores of
# earlier rows stay until the part ends (so do the ext4 copies): creates
# on ext4 can slow down for minutes after many deletes near them (see
# run-bench.sh's ext4 probe), and rows that follow our own deletes would
# pay for them.
bulk_fresh() {
	local o=config=$TMP/bulk.json
	t4dx_stop
	BULK_NSTORE=$((BULK_NSTORE + 1))
	DATA=$TMP/bulk-data/$BULK_NSTORE
	mkdir -m 0700 "$DATA" || return 1
	[[ $1 == t4dx-fsync ]] && o=$o,durability=fsync
	bulk_t4dx_start -o "$o" || {
		note "bulk: t4dx ($1) did not mount: $(tail -n 3 "$T4DX_LOG" | tr '\n' ' ')"
		return 1
	}
}

# bulk_config MAX_ITEM_BYTES: the bulk part's configuration file.
bulk_config() {
	local wb=$((256 << 20))
	(($1 > wb)) && wb=$1
	{
		printf '{"wal":{"archive_max_bytes":%d},' $((1 << 50))
		printf '"limits":{"max_item_bytes":%d,"write_buffer_bytes":%d}' "$1" "$wb"
		[[ ${BULK_EMBEDDER:-} == off ]] && printf ',"vector":{"embedder":"off"}'
		printf '}\n'
	} >"$TMP/bulk.json"
}

# bulk_probe: the largest file t4dx takes, and whether it knows
# durability=fsync; how its final sync is done.
bulk_probe() {
	local want=$((BULK_DD_MIB << 20)) tool
	BULK_DD_EFF=$BULK_DD_MIB
	bulk_config "$want"
	DATA=$TMP/bulk-data/probe-1
	mkdir -m 0700 "$DATA"
	if ! bulk_t4dx_start -o "config=$TMP/bulk.json"; then
		if grep -q max_item_bytes "$T4DX_LOG"; then
			# the largest the configuration allows: whole MiB
			# below its ceiling (268435455 in core/t4dx.h when this
			# was written)
			bulk_config 268435455
			BULK_DD_EFF=255
			BULK_DD_CAPPED=1
			note "bulk: limits.max_item_bytes refuses $BULK_DD_MIB MiB ($(grep -m 1 max_item_bytes "$T4DX_LOG" | head -c 200)); the large file is $BULK_DD_EFF MiB on every system"
			bulk_t4dx_start -o "config=$TMP/bulk.json" ||
				note "bulk: t4dx does not mount: $(tail -n 3 "$T4DX_LOG" | tr '\n' ' ')"
		else
			note "bulk: t4dx does not mount: $(tail -n 3 "$T4DX_LOG" | tr '\n' ' ')"
		fi
	fi
	t4dx_stop
	DATA=$TMP/bulk-data/probe-2
	mkdir -m 0700 "$DATA"
	if bulk_t4dx_start -o "config=$TMP/bulk.json,durability=fsync"; then
		BULK_FSYNC=1
		t4dx_stop
	elif grep -qi 'unknown option\|durability' "$T4DX_LOG"; then
		BULK_FSYNC_WHY="n/a (option not supported)"
	else
		BULK_FSYNC_WHY="n/a (did not mount: $(tail -n 1 "$T4DX_LOG" | head -c 120))"
	fi
	tool=${BENCH_T4DX:-$(dirname "$T4DXFS")/../tools/t4dx}
	BULK_TOOL=
	if [[ -x $tool ]] && "$tool" help 2>&1 | grep -qE '^[[:space:]]+sync([[:space:]]|$)'; then
		BULK_TOOL=$(realpath "$tool")
		BULK_SYNC_HOW="\`t4dx sync MOUNT\`"
	else
		BULK_SYNC_HOW="fsync of MOUNT/items (\`sync MOUNT/items\`: this t4dx has no sync command)"
	fi
}

# bulk_final_sync SYS DIR: what ends SYS's row, timed with it.
bulk_final_sync() {
	case $1 in
	t4dx-fsync)
		if [[ -n $BULK_TOOL ]]; then
			"$BULK_TOOL" sync "$MNT"
		else
			sync "$MNT/items"
		fi
		;;
	ext4-sync) sync -f "$2" ;;
	*) return 0 ;;
	esac
}

# bulk_tree_setup I DIR: tarball $TMP/bulk-I.tar of DIR, the same tree
# extracted to $TMP/bulk-src-I/NAME, and its shape.
bulk_tree_setup() {
	local i=$1 dir parent name
	dir=$(realpath -e "$2" 2>/dev/null)
	if [[ -z $dir || ! -d $dir ]]; then
		note "bulk: $2 is no directory: left out"
		return 1
	fi
	parent=$(dirname "$dir")
	name=$(basename "$dir")
	tar -cf "$TMP/bulk-$i.tar" -C "$parent" "$name" 2>"$TMP/tar.err" ||
		harness_fail "bulk: tar of $dir: $(head -c 200 "$TMP/tar.err")"
	if ! mkdir -p "$TMP/bulk-src-$i" ||
		! tar -xf "$TMP/bulk-$i.tar" -C "$TMP/bulk-src-$i"; then
		harness_fail "bulk: extracting the tarball of $dir"
	fi
	BULK_NAME[i]=$name
	BULK_DIR[i]=$dir
	BULK_SHAPE[i]=$(bulk_shape "$TMP/bulk-src-$i/$name")
	BULK_DIGEST[i]=$(bulk_digest "$TMP/bulk-src-$i/$name")
	BULK_TREE_BYTES=$((BULK_TREE_BYTES + $(field bytes "${BULK_SHAPE[i]}")))
	BULK_TREE_ENTRIES=$((BULK_TREE_ENTRIES + $(field entries "${BULK_SHAPE[i]}")))
}

# bulk_shape DIR: "files=N symlinks=N dirs=N bytes=N content=N entries=N"
# (bytes: regular files; content: those and the symlinks' targets).
bulk_shape() {
	find "$1" -printf '%y %s\n' 2>/dev/null | awk '
		{ n++ }
		$1 == "f" { f++; b += $2; c += $2 }
		$1 == "l" { l++; c += $2 }
		$1 == "d" { d++ }
		END { printf "files=%d symlinks=%d dirs=%d bytes=%d content=%d entries=%d\n",
			f, l, d, b, c, n }'
}

# bulk_digest DIR: a digest of what tar, cp -a and rsync -a keep of every
# entry under DIR: its path, type, mode, owner, mtime (whole seconds) and
# size (not a directory's).
bulk_digest() {
	(cd "$1" && find . -mindepth 1 -printf '%P %y %m %U %G %T@ %s\n') 2>/dev/null |
		awk '{ $6 = int($6); if ($2 == "d") $7 = 0; print }' | sort | md5sum |
		cut -d ' ' -f 1
}

# bulk_snap: "syncs=N walb=N" of the running t4dx (empty fields if
# .ctl/stats lacks them).
bulk_snap() {
	local s b a
	s=$(t4dx_stat wal_syncs)
	b=$(t4dx_stat wal_bytes)
	a=$(t4dx_stat archive_bytes)
	if [[ -n $b && -n $a ]]; then
		printf 'syncs=%s walb=%s\n' "$s" "$((b + a))"
	else
		printf 'syncs=%s walb=\n' "$s"
	fi
}

# bulk_counts BEFORE AFTER FILES CONTENT: the per-file figures of a t4dx
# row, from two bulk_snap lines.
bulk_counts() {
	awk -v s0="$(field syncs "$1")" -v s1="$(field syncs "$2")" \
		-v b0="$(field walb "$1")" -v b1="$(field walb "$2")" \
		-v f="$3" -v c="$4" 'BEGIN {
		if (s0 != "" && s1 != "" && f > 0)
			printf "syncs=%d syncs_per_file=%.4f ", s1 - s0, (s1 - s0) / f
		if (b0 != "" && b1 != "" && c > 0)
			printf "wal_bytes=%d wal_per_byte=%.4f", b1 - b0, (b1 - b0) / c
	}'
}

# bulk_dest SYS: the empty parent directory a row writes into.
bulk_dest() {
	case $1 in
	t4dx | t4dx-fsync) printf '%s\n' "$MNT/items/bulk" ;;
	nullfs) printf '%s\n' "$NMNT/items/bulk-$ROUND" ;;
	ext4-sync) printf '%s\n' "$BULK_EXT/sync-$ROUND" ;;
	ext4-fdsync) printf '%s\n' "$BULK_EXT/fdsync-$ROUND" ;;
	esac
}

# bulk_tree_row WL I SYS: one command WL (tar, rsync, cp) of tree I on
# SYS, timed with its final sync, checked against the source.
bulk_tree_row() {
	local wl=$1 i=$2 sys=$3 key=bulk-$1-$2 d src name t0 t1 t2 rc=0 b a shape extra='' nf
	name=${BULK_NAME[i]}
	src=$TMP/bulk-src-$i/$name
	if [[ $sys == t4dx* ]]; then
		if [[ $sys == t4dx-fsync ]] && ((!BULK_FSYNC)); then
			return 0
		fi
		bulk_fresh "$sys" || {
			rec "$key" "$sys" "failed=1 errors=1"
			return 0
		}
	fi
	d=$(bulk_dest "$sys")/$wl-$i
	mkdir -p "$d" || {
		rec "$key" "$sys" "failed=1 errors=1"
		note "bulk: $sys: mkdir $d failed"
		return 0
	}
	# what is dirty on the disk is no part of this row's sync
	sync -f "$TMP" "$BULK_EXT"
	[[ $sys == t4dx* ]] && b=$(bulk_snap)
	bulk_ops "$sys" "$TMP/bulk-ops.b"
	t0=$(now_us)
	case $sys:$wl in
	ext4-fdsync:rsync)
		if ((BULK_RSYNC_FSYNC)); then
			rsync -a --fsync "$src" "$d/"
		else
			mkdir "$d/$name" && "$TREECOPY" -s -l "$sys" "$src" "$d/$name" >"$TMP/treecopy.out"
		fi
		;;
	ext4-fdsync:*)
		mkdir "$d/$name" && "$TREECOPY" -s -l "$sys" "$src" "$d/$name" >"$TMP/treecopy.out"
		;;
	*:tar) tar -xf "$TMP/bulk-$i.tar" -C "$d" ;;
	*:rsync) rsync -a "$src" "$d/" ;;
	*:cp) cp -a "$src" "$d/" ;;
	esac 2>"$TMP/bulk.err" || rc=$?
	t1=$(now_us)
	((rc == 0)) && { bulk_final_sync "$sys" "$d" 2>>"$TMP/bulk.err" || rc=$?; }
	t2=$(now_us)
	[[ $sys == t4dx* ]] && a=$(bulk_snap)
	bulk_ops "$sys" "$TMP/bulk-ops.a"
	if ((rc != 0)); then
		rec "$key" "$sys" "failed=1 errors=1"
		note "bulk: $sys $wl of $name failed (status $rc): $(head -c 300 "$TMP/bulk.err")"
	else
		shape=$(bulk_shape "$d/$name")
		local f
		for f in files symlinks dirs bytes; do
			if [[ $(field "$f" "$shape") != "$(field "$f" "${BULK_SHAPE[i]}")" ]]; then
				rec "$key" "$sys" "failed=1 errors=1"
				note "bulk: $sys $wl of $name: the copy has $shape, the source ${BULK_SHAPE[i]}"
				rc=1
				break
			fi
		done
		if ((rc == 0)) && [[ $(bulk_digest "$d/$name") != "${BULK_DIGEST[i]}" ]]; then
			rec "$key" "$sys" "failed=1 errors=1"
			note "bulk: $sys $wl of $name: the copy's paths, modes, owners, mtimes or sizes differ from the source's"
			rc=1
		fi
		if ((rc == 0)) && ! diff -rq --no-dereference "$src" "$d/$name" >"$TMP/bulk.diff" 2>&1; then
			rec "$key" "$sys" "failed=1 errors=1"
			note "bulk: $sys $wl of $name: the copy differs from the source: $(head -c 300 "$TMP/bulk.diff")"
			rc=1
		fi
	fi
	if ((rc == 0)); then
		nf=$(($(field files "${BULK_SHAPE[i]}") + $(field symlinks "${BULK_SHAPE[i]}")))
		if [[ $sys == t4dx* || $sys == nullfs ]]; then
			extra="$(bulk_reqs "$TMP/bulk-ops.b" "$TMP/bulk-ops.a" "$nf" \
				"$TMP/bulk-opmix-$key-$sys") "
		fi
		if [[ $sys == t4dx* ]]; then
			extra+=$(bulk_counts "$b" "$a" "$nf" \
				"$(field content "${BULK_SHAPE[i]}")")
		elif [[ $sys == ext4-fdsync && -s $TMP/treecopy.out && ($wl != rsync || $BULK_RSYNC_FSYNC == 0) ]]; then
			extra="syncs_per_file=$(awk -v s="$(field syncs "$(cat "$TMP/treecopy.out")")" \
				-v f="$(($(field files "${BULK_SHAPE[i]}") + $(field symlinks "${BULK_SHAPE[i]}")))" \
				'BEGIN { printf "%.4f", f ? s / f : 0 }')"
		fi
		rec "$key" "$sys" "seconds=$(bulk_s "$t0" "$t2") cmd_s=$(bulk_s "$t0" "$t1") sync_s=$(bulk_s "$t1" "$t2") $extra errors=0"
	fi
	: >"$TMP/treecopy.out"
	case $sys in
	t4dx*) t4dx_stop ;;
	nullfs) rm -rf "$d" ;;
	esac
	return 0
}

bulk_s() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", (b - a) / 1e6 }'
}

# bulk_ops SYS FILE: the FUSE request counters of SYS into FILE (t4dx and
# nullfs; empty for the others).
bulk_ops() {
	case $1 in
	t4dx*) opsnap t4dx "$2" ;;
	nullfs) opsnap nullfs "$2" ;;
	*) : >"$2" ;;
	esac
}

# bulk_reqs BEFORE AFTER FILES MIX: "reqs_per_file=R xattr_per_file=X"
# for the record, all FUSE requests and those on extended attributes
# (which t4dx answers but nullfs refuses with ENOSYS, after which the
# kernel stops asking), per file or symlink; MIX gets the requests per
# file by operation, for the table.  t4dx's counts include the few
# requests of reading .ctl/metrics itself.
bulk_reqs() {
	awk -v n="$3" -v mix="$4" '
		NR == FNR { b[$1] = $2; next }
		$1 ~ /^(wal_syncs|wal_records)$/ { next }
		{
			d = $2 - b[$1]
			if (d <= 0 || n <= 0)
				next
			t += d
			if ($1 ~ /xattr$/)
				x += d
			if (d / n >= 0.01)
				m = m sprintf(" %s %.2f", $1, d / n)
		}
		END {
			if (n <= 0)
				exit
			printf "reqs_per_file=%.4f xattr_per_file=%.4f", t / n, x / n
			print substr(m, 2) >mix
		}' "$1" "$2"
}

# bulk_req_kib OP BEFORE AFTER BYTES: "NAME=KiB per OP request" for the
# record (NAME wreq_kib or rreq_kib), nothing if OP was not counted.
bulk_req_kib() {
	awk -v op="$1" -v n="$4" -v name="$([[ $1 == write ]] && echo wreq || echo rreq)" '
		NR == FNR { if ($1 == op) b = $2; next }
		$1 == op && b != "" && $2 > b {
			printf "%s=%d %s_kib=%.1f ", name, $2 - b, name, n / 1024 / ($2 - b)
		}' "$2" "$3"
}

# bulk_dd_row SYS: write the large file with dd bs=1M (and its final
# sync), then read it back with the caches dropped.
bulk_dd_row() {
	local sys=$1 d f t0 t1 t2 rc=0 b a bytes=$((BULK_DD_EFF << 20)) conv='' wr=''
	if [[ $sys == t4dx* ]]; then
		if [[ $sys == t4dx-fsync ]] && ((!BULK_FSYNC)); then
			return 0
		fi
		bulk_fresh "$sys" || {
			rec bulk-ddw "$sys" "failed=1 errors=1"
			return 0
		}
	fi
	d=$(bulk_dest "$sys")
	mkdir -p "$d" || return 0
	f=$d/large
	[[ $sys == ext4-fdsync ]] && conv=conv=fdatasync
	# the source in the page cache
	cat "$TMP/bulk-dd.in" >/dev/null
	sync -f "$TMP" "$BULK_EXT"
	[[ $sys == t4dx* ]] && b=$(bulk_snap)
	bulk_ops "$sys" "$TMP/bulk-ops.b"
	t0=$(now_us)
	dd if="$TMP/bulk-dd.in" of="$f" bs=1M $conv status=none 2>"$TMP/bulk.err" || rc=$?
	t1=$(now_us)
	((rc == 0)) && { bulk_final_sync "$sys" "$d" 2>>"$TMP/bulk.err" || rc=$?; }
	t2=$(now_us)
	[[ $sys == t4dx* ]] && a=$(bulk_snap)
	bulk_ops "$sys" "$TMP/bulk-ops.a"
	wr=$(bulk_req_kib write "$TMP/bulk-ops.b" "$TMP/bulk-ops.a" "$bytes")
	if ((rc != 0)); then
		rec bulk-ddw "$sys" "failed=1 errors=1"
		note "bulk: $sys dd of $BULK_DD_EFF MiB failed (status $rc): $(head -c 300 "$TMP/bulk.err")"
	else
		rec bulk-ddw "$sys" "seconds=$(bulk_s "$t0" "$t2") sync_s=$(bulk_s "$t1" "$t2") mb_s=$(awk -v n="$bytes" -v a="$t0" -v b="$t2" 'BEGIN { printf "%.1f", n / (b - a) }') $([[ $sys == t4dx* ]] && bulk_counts "$b" "$a" 1 "$bytes") ${wr}errors=0"
		# the read: t4dx in its default mode stands for both
		if [[ $sys != t4dx-fsync && $sys != ext4-fdsync ]]; then
			drop_caches
			bulk_ops "$sys" "$TMP/bulk-ops.b"
			t0=$(now_us)
			dd if="$f" of=/dev/null bs=1M status=none 2>"$TMP/bulk.err" || rc=$?
			t1=$(now_us)
			bulk_ops "$sys" "$TMP/bulk-ops.a"
			wr=$(bulk_req_kib read "$TMP/bulk-ops.b" "$TMP/bulk-ops.a" "$bytes")
			if ((rc == 0)) && cmp -s "$TMP/bulk-dd.in" "$f"; then
				rec bulk-ddr "$sys" "seconds=$(bulk_s "$t0" "$t1") mb_s=$(awk -v n="$bytes" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }') ${wr}errors=0"
			else
				rec bulk-ddr "$sys" "failed=1 errors=1"
				note "bulk: $sys: reading the large file back failed or differs (status $rc): $(head -c 200 "$TMP/bulk.err")"
			fi
		fi
	fi
	case $sys in
	t4dx*) t4dx_stop ;;
	nullfs) rm -f "$f" ;;   # (its memory)
	esac
	return 0
}

bulk_measure() {
	local saved_data=$DATA i t wl sys
	ROUND=0
	pin 0
	t4dx_stop
	BULK_TREE_BYTES=0
	BULK_TREE_ENTRIES=0
	i=0
	if ((!BULK_DD_ONLY)); then
		if [[ -z $TREECOPY ]]; then
			note "bulk: run-bench.sh got no TREECOPY: the bulk part is not measured"
			return 0
		fi
		progress "bulk: tarballs of $BULK_TREES"
		for t in $BULK_TREES; do
			bulk_tree_setup $((i + 1)) "$t" && i=$((i + 1))
		done
		if ((!i)); then
			note "bulk: no tree to load (BULK_TREES=$BULK_TREES): the bulk part is not measured"
			return 0
		fi
	fi
	BULK_NTREES=$i
	BULK_MEASURED=1
	bulk_ext4_setup
	rsync --help 2>/dev/null | grep -q -- '--fsync' && BULK_RSYNC_FSYNC=1
	if [[ -z $NULL_PID ]] || ! alive "$NULL_PID"; then
		start_nullfs "$NMNT" "$TMP/nullfs-bulk.log"
		NULL_PID=$STARTED_PID
	fi
	mkdir -m 0700 "$TMP/bulk-data" || harness_fail "mkdir $TMP/bulk-data"
	progress "bulk: probing t4dxfs (largest file, durability=fsync)"
	bulk_probe
	head -c $(((BULK_DD_EFF << 20) * 3 / 4 + 3)) /dev/urandom | base64 -w 76 |
		head -c $((BULK_DD_EFF << 20)) >"$TMP/bulk-dd.in"

	for ((ROUND = 1; ROUND <= BULK_ROUNDS; ROUND++)); do
		for ((i = 1; i <= BULK_NTREES; i++)); do
			for wl in tar rsync cp; do
				progress "bulk: round $ROUND/$BULK_ROUNDS, $wl of ${BULK_DIR[i]}"
				for sys in $(order "${BULK_SYSTEMS[@]}"); do
					bulk_tree_row "$wl" "$i" "$sys"
				done
			done
		done
		progress "bulk: round $ROUND/$BULK_ROUNDS, dd of $BULK_DD_EFF MiB"
		for sys in $(order "${BULK_SYSTEMS[@]}"); do
			bulk_dd_row "$sys"
		done
	done
	ROUND=0
	# everything written stays until here (see bulk_fresh)
	rm -rf "$TMP/bulk-data" "$TMP/bulk-dd.in" "$BULK_EXT"/sync-* "$BULK_EXT"/fdsync-*
	DATA=$saved_data
}

# ---- the table ---------------------------------------------------------------

BROW_FMT='%-36s %10s %10s %10s %11s %10s  %-22s %-8s %s\n'
brow() {
	# shellcheck disable=SC2059
	printf "$BROW_FMT" "$@"
}

# bcell KEY SYS FIELD SCALE DIGITS: the median, FAILED, n/a or "-".
bcell() {
	if [[ $2 == t4dx-fsync ]] && ((!BULK_FSYNC)); then
		printf 'n/a'
		return
	fi
	if failed "$1" "$2"; then
		printf 'FAILED'
		return
	fi
	fmt "$(median "$1" "$2" "$3")" "$4" "$5"
}

# bval KEY SYS FIELD: the raw median, empty if failed or missing.
bval() {
	failed "$1" "$2" && return
	median "$1" "$2" "$3"
}

# bulk_floor N B LIMIT: whether nullfs (N seconds) leaves room under a
# goal of LIMIT times baseline B: "room" or "NO: FUSE alone is past it".
bulk_floor() {
	[[ -n $1 && -n $2 ]] || {
		printf -- '-'
		return
	}
	awk -v n="$1" -v b="$2" -v l="$3" 'BEGIN {
		if (b == 0) { print "-"; exit }
		print n / b <= l ? "room" : "NO: FUSE alone is past it" }'
}

# bulk_over T N SHAPE: (T - N) seconds per file and symlink of SHAPE, in ms.
bulk_over() {
	[[ -n $1 && -n $2 ]] || {
		printf -- '-'
		return
	}
	awk -v t="$1" -v n="$2" -v f="$(field files "$3")" -v l="$(field symlinks "$3")" \
		'BEGIN { if (f + l > 0) printf "%+.3f", (t - n) * 1000 / (f + l); else print "-" }'
}

# bulk_opmix: the FUSE requests per file by operation of the last round's
# tree rows, t4dx and nullfs side by side.
bulk_opmix() {
	local i wl sys f
	echo "  FUSE requests per file by operation (the last round):"
	for ((i = 1; i <= BULK_NTREES; i++)); do
		for wl in tar rsync cp; do
			for sys in t4dx t4dx-fsync nullfs; do
				f=$TMP/bulk-opmix-bulk-$wl-$i-$sys
				[[ -s $f ]] || continue
				printf '    %-5s %-12s %-10s %s\n' "$wl" "${BULK_NAME[i]}" "$sys" "$(cat "$f")"
			done
		done
	done
}

bulk_table() {
	local i wl key name sh T F S D N tg
	((BULK_MEASURED)) || return 0
	echo
	echo "bulk loads (issue 14): medians of $BULK_ROUNDS rounds, the systems alternating; times include the final sync"
	echo "  t4dx: default mode (close waits for the file to be durable), a fresh store each row"
	if ((BULK_FSYNC)); then
		echo "  t4dx-fsync: -o durability=fsync, then $BULK_SYNC_HOW"
	else
		echo "  t4dx-fsync: $BULK_FSYNC_WHY"
	fi
	echo "  ext4: $BULK_EXT_DESC"
	echo "  ext4+sync: the command, then sync -f; ext4-fdsync: an fdatasync per file (treecopy -s for tar and cp,"
	if ((BULK_RSYNC_FSYNC)); then
		echo "    rsync -a --fsync for rsync, dd conv=fdatasync); nullfs: the no-I/O FUSE ceiling"
	else
		echo "    also for rsync, which has no --fsync here; dd conv=fdatasync); nullfs: the no-I/O FUSE ceiling"
	fi
	[[ ${BULK_EMBEDDER:-} == off ]] && echo "  t4dx with vector.embedder off" ||
		echo "  t4dx with the default configuration (builtin embedder on: its records count in the WAL figures)"
	for ((i = 1; i <= BULK_NTREES; i++)); do
		sh=${BULK_SHAPE[i]}
		echo "  tree $i: ${BULK_DIR[i]}: $(field files "$sh") files, $(field symlinks "$sh") symlinks, $(field dirs "$sh") dirs, $(fmt "$(field bytes "$sh")" 0.000001 1) MB"
	done
	echo
	brow "workload" t4dx t4dx-fsync ext4+sync ext4-fdsync nullfs ratio target met
	brow "--------" ---- ---------- --------- ----------- ------ ----- ------ ---
	for ((i = 1; i <= BULK_NTREES; i++)); do
		name=${BULK_NAME[i]}
		for wl in tar rsync cp; do
			key=bulk-$wl-$i
			T=$(bval "$key" t4dx seconds)
			F=$(bval "$key" t4dx-fsync seconds)
			S=$(bval "$key" ext4-sync seconds)
			D=$(bval "$key" ext4-fdsync seconds)
			case $wl in
			tar) tg="tar -xf" ;;
			rsync) tg="rsync -a" ;;
			cp) tg="cp -a" ;;
			esac
			brow "$tg $name [s]" "$(bcell "$key" t4dx seconds 1 2)" \
				"$(bcell "$key" t4dx-fsync seconds 1 2)" "$(bcell "$key" ext4-sync seconds 1 2)" \
				"$(bcell "$key" ext4-fdsync seconds 1 2)" "$(bcell "$key" nullfs seconds 1 2)" \
				"$(ratio "$T" "$D") ext4-fdsync" "<=0.5x" "$(verdict "$T" "$D" '<=' 0.5)"
			if ((BULK_FSYNC)); then
				brow "  fsync mode vs ext4+sync" "" "" "" "" "" \
					"$(ratio "$F" "$S") ext4+sync" "<=3x" "$(verdict "$F" "$S" '<=' 3)"
			fi
			N=$(bval "$key" nullfs seconds)
			if ((BULK_FSYNC)); then
				brow "  vs nullfs: default, fsync mode" "" "" "" "" "" \
					"$(ratio "$T" "$N"), $(ratio "$F" "$N")" "" ""
			else
				brow "  vs nullfs" "" "" "" "" "" "$(ratio "$T" "$N")" "" ""
			fi
			# what FUSE alone costs: if nullfs, which stores nothing,
			# is already past a goal's ratio, no FUSE design meets it
			# on this machine
			brow "  FUSE floor: nullfs vs ext4-fdsync" "" "" "" "" "" \
				"$(ratio "$N" "$D")" "<=0.5x" "$(bulk_floor "$N" "$D" 0.5)"
			if ((BULK_FSYNC)); then
				brow "  FUSE floor: nullfs vs ext4+sync" "" "" "" "" "" \
					"$(ratio "$N" "$S")" "<=3x" "$(bulk_floor "$N" "$S" 3)"
			fi
			sh=${BULK_SHAPE[i]}
			brow "  over nullfs per file [ms]" "$(bulk_over "$T" "$N" "$sh")" \
				"$(bulk_over "$F" "$N" "$sh")" "" "" "" "" "" ""
			brow "  FUSE requests per file" "$(bcell "$key" t4dx reqs_per_file 1 2)" \
				"$(bcell "$key" t4dx-fsync reqs_per_file 1 2)" "" "" \
				"$(bcell "$key" nullfs reqs_per_file 1 2)" "" "" ""
			brow "    of which on xattrs" "$(bcell "$key" t4dx xattr_per_file 1 2)" \
				"$(bcell "$key" t4dx-fsync xattr_per_file 1 2)" "" "" \
				"$(bcell "$key" nullfs xattr_per_file 1 2)" "" "" ""
			T=$(bval "$key" t4dx syncs_per_file)
			brow "  fdatasyncs per file" "$(bcell "$key" t4dx syncs_per_file 1 2)" \
				"$(bcell "$key" t4dx-fsync syncs_per_file 1 2)" - \
				"$(bcell "$key" ext4-fdsync syncs_per_file 1 2)" - \
				"default mode" "<=1.3" \
				"$([[ -n $T ]] && awk -v v="$T" 'BEGIN { print v <= 1.3 ? "yes" : "NO" }')"
			brow "  WAL bytes per content byte" "$(bcell "$key" t4dx wal_per_byte 1 2)" \
				"$(bcell "$key" t4dx-fsync wal_per_byte 1 2)" "" "" "" "" "" ""
			brow "  of which the final sync [s]" "" "$(bcell "$key" t4dx-fsync sync_s 1 3)" \
				"$(bcell "$key" ext4-sync sync_s 1 3)" "" "" "" "" ""
		done
	done
	T=$(bval bulk-ddw t4dx mb_s)
	S=$(bval bulk-ddw ext4-sync mb_s)
	N=$(bval bulk-ddw nullfs mb_s)
	brow "dd bs=1M write $BULK_DD_EFF MiB [MB/s]" "$(bcell bulk-ddw t4dx mb_s 1 0)" \
		"$(bcell bulk-ddw t4dx-fsync mb_s 1 0)" "$(bcell bulk-ddw ext4-sync mb_s 1 0)" \
		"$(bcell bulk-ddw ext4-fdsync mb_s 1 0)" "$(bcell bulk-ddw nullfs mb_s 1 0)" \
		"$(ratio "$T" "$S") ext4, $(ratio "$T" "$N") null" "" ""
	T=$(bval bulk-ddr t4dx mb_s)
	S=$(bval bulk-ddr ext4-sync mb_s)
	N=$(bval bulk-ddr nullfs mb_s)
	brow "  read back, caches dropped [MB/s]" "$(bcell bulk-ddr t4dx mb_s 1 0)" "" \
		"$(bcell bulk-ddr ext4-sync mb_s 1 0)" "" "$(bcell bulk-ddr nullfs mb_s 1 0)" \
		"$(ratio "$T" "$S") ext4, $(ratio "$T" "$N") null" "" ""
	brow "  fdatasyncs (one file)" "$(bcell bulk-ddw t4dx syncs 1 0)" \
		"$(bcell bulk-ddw t4dx-fsync syncs 1 0)" "" "" "" "" "" ""
	brow "  WAL bytes per content byte" "$(bcell bulk-ddw t4dx wal_per_byte 1 2)" \
		"$(bcell bulk-ddw t4dx-fsync wal_per_byte 1 2)" "" "" "" "" "" ""
	brow "  KiB per FUSE WRITE request" "$(bcell bulk-ddw t4dx wreq_kib 1 0)" \
		"$(bcell bulk-ddw t4dx-fsync wreq_kib 1 0)" "" "" "$(bcell bulk-ddw nullfs wreq_kib 1 0)" \
		"" "" ""
	brow "  KiB per FUSE READ request" "$(bcell bulk-ddr t4dx rreq_kib 1 0)" "" "" "" \
		"$(bcell bulk-ddr nullfs rreq_kib 1 0)" "" "" ""
	bulk_opmix
	((BULK_DD_CAPPED)) &&
		echo "  (asked $BULK_DD_MIB MiB; limits.max_item_bytes allows at most 256 MiB - 1 a file: $BULK_DD_EFF MiB everywhere)"
	echo "  (ratios: t4dx time / baseline time, lower is better; for dd, MB/s / MB/s, higher is better)"
}
