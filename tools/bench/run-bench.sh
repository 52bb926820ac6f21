#!/bin/bash
# run-bench.sh - the t4dx benchmark of issue 5, side by side with what users
# would pick instead, in one run on this machine.
#
#     run-bench.sh T4DXFS NULLFS BENCH [VECBENCH [TREECOPY]]
#                                             (`make bench` passes them)
#
# It mounts a fresh t4dx (T4DXFS -f, DATA_DIR in a private directory), a
# no-I/O in-memory FUSE file system (NULLFS: the ceiling of any FUSE design
# here; a second one with -o nocache, the ceiling of a design whose every
# read is a round trip; for the hot reads only, one with -o noopen and one
# with -o noopen,noflush, the floor of a cat through FUSE: in the kernel's
# no-open mode a cat costs one FLUSH, and no round trip once FLUSH answers
# ENOSYS too, which a file system that commits at close cannot do), uses a
# plain directory on the same disk as the ext4 baseline (open/write/
# fdatasync/close per file) and, if BENCH was built with SQLite, a database
# in WAL mode with synchronous=FULL.  It runs every workload in rounds that
# alternate the systems (the order rotates each round) and prints one table
# of medians, each figure next to its baselines and the ratios and targets
# of the issue, then the FUSE requests per operation that t4dx and nullfs
# counted.
#
# Environment:
#   BENCH_QUICK=1     small sizes and 2 rounds (a try in about a minute)
#   BENCH_ROUNDS=N    rounds per workload (default 5; quick 2)
#   BENCH_SCALE=N     items of the scale part (default 100000; quick 10000)
#   BENCH_TMPDIR=DIR  where the private directory goes (default /var/tmp;
#                     must be a disk, not a tmpfs)
#   BENCH_RESULTS=F   raw result lines (default ./bench-results.txt)
#   BENCH_KEEP=1      keep the private directory (data, logs) at the end
#   BENCH_PIN=0       do not pin the single-threaded workloads (below)
#   BENCH_ONLY=restart  only the big writers' live WAL and kill -9 restart
#   BENCH_ONLY=search   only the search part (tools/bench/search.sh, which
#                     says what it measures and its own variables)
#   BENCH_ONLY=embedder only that part's 16 writers, embedder on and off
#   BENCH_ONLY=nrem     only that part's stores, their queries through the
#                     mount and their nrem (time and the daemon's VmHWM)
#   BENCH_W16=N       items each of the 16 writers writes (default 200;
#                     quick 25)
#   BENCH_ONLY=bulk     only the bulk loads: tar, rsync, cp -a of trees of
#                     small files and dd of a large one, next to ext4
#                     (tools/bench/bulk.sh, which says what it measures
#                     and its own variables)
#   BENCH_ONLY=dd       only the bulk part's large file (dd bs=1M write
#                     and read back on every system), no trees
#   BENCH_T4DX=PATH   the t4dx tool (for `t4dx sync`; default: next to
#                     T4DXFS's build directory)
#   BIG_WRITERS=N, BIG_TIMES=N, BIG_ROUNDS=N  that part's writers (8),
#                     rewrites of each one's 16 MiB file (12), rounds (3)
#
# Pinning.  On this VM a FUSE round trip costs about three times more when
# the daemon's thread runs on another vCPU than the client (the wakeup is an
# IPI through the hypervisor), and where the scheduler puts them changes
# from run to run: unpinned, the p50 of one run is either ~35 or ~115 us
# for the same nullfs.  So the single-threaded workloads (1 writer, hot and
# cold reads, ls, ls -l) run with the client and every daemon thread on one
# CPU (BENCH_PIN_CPU, default 0), for every system alike; the 16 writers,
# the populates and the restarts run unpinned.
#
# Benchmarks never fail a build: the exit status is 0 unless the harness
# itself broke (a missing binary, nullfs not mounting, no disk space).  A
# t4dx that fails a workload, dies or does not mount shows as FAILED in the
# table, with its log, and the run goes on.  Whatever happens, every mount
# is unmounted and every process this script started is ended.

# shellcheck disable=SC2317  # functions called from the trap
set -u
export LC_ALL=C

if (($# < 3 || $# > 5)); then
	echo "usage: run-bench.sh T4DXFS NULLFS BENCH [VECBENCH [TREECOPY]]" >&2
	exit 2
fi
T4DXFS=$(realpath -e "$1") || exit 1
NULLFS=$(realpath -e "$2") || exit 1
BENCH=$(realpath -e "$3") || exit 1
VECBENCH=
TREECOPY=
(($# >= 4)) && { VECBENCH=$(realpath -e "$4") || exit 1; }
(($# == 5)) && { TREECOPY=$(realpath -e "$5") || exit 1; }

case ${BENCH_ONLY:-} in
'' | restart | search | embedder | nrem | bulk | dd) ;;
*)
	echo "run-bench.sh: BENCH_ONLY is restart, search, embedder, nrem, bulk or dd, not '$BENCH_ONLY'" >&2
	exit 2
	;;
esac
# want PART: the run includes PART (main: the parts no BENCH_ONLY names;
# embedder and nrem are pieces of search, dd of bulk).
want() {
	[[ -z ${BENCH_ONLY:-} || $1 == "${BENCH_ONLY:-main}" ]] ||
		[[ $1 == search && (${BENCH_ONLY:-} == embedder ||
			${BENCH_ONLY:-} == nrem) ]] ||
		[[ $1 == bulk && ${BENCH_ONLY:-} == dd ]]
}

if [[ ! -c /dev/fuse ]] || ! command -v fusermount3 >/dev/null; then
	echo "run-bench.sh: /dev/fuse or fusermount3 missing: nothing measured"
	exit 0
fi

# ---- sizes ---------------------------------------------------------------

if [[ ${BENCH_QUICK:-0} == 1 ]]; then
	ROUNDS=${BENCH_ROUNDS:-2}
	SCALE=${BENCH_SCALE:-10000}
	W1=200          # items of the one writer
	W16=${BENCH_W16:-25} # items per writer of the sixteen
	COLD_ITEMS=1000 # the cold set
	COLD_N=200      # cold reads per round
	HOT_N=2000      # hot reads per round (at most HOT_MAX seconds)
	WAL_EXTRA=1000  # items left in the WAL for the crash restart
	REWRITES=100    # 1 MiB rewrites of one file before a crash restart
else
	ROUNDS=${BENCH_ROUNDS:-5}
	SCALE=${BENCH_SCALE:-100000}
	W1=1000
	W16=${BENCH_W16:-200}
	COLD_ITEMS=5000
	COLD_N=1000
	HOT_N=20000
	WAL_EXTRA=5000
	REWRITES=400
fi
HOT_MAX=2
ITEM_MIB=${ITEM_MIB:-128}       # the one big item of the RSS part
HOLD_FILES=${HOLD_FILES:-24}    # files of 16 MiB held open
HOLD_BUDGET_MIB=${HOLD_BUDGET_MIB:-64}
PIN=${BENCH_PIN:-1}
PIN_CPU=${BENCH_PIN_CPU:-0}
NCPU=$(nproc)
((NCPU > 1)) || PIN=0
# the file systems get 16 writers of the same count each
SCALE=$(((SCALE + 15) / 16 * 16))
RESULTS=$(realpath -m "${BENCH_RESULTS:-./bench-results.txt}")

# ---- the private directory, the trap --------------------------------------

BASE=${BENCH_TMPDIR:-/var/tmp}
TMP=$(mktemp -d "$BASE/t4dx-bench.XXXXXXXX") || exit 1
TMP=$(cd "$TMP" && pwd -P)
DATA=$TMP/t4dx-data
MNT=$TMP/t4dx-mnt
NMNT=$TMP/null-mnt
UMNT=$TMP/nullnc-mnt
XMNT=$TMP/nullxa-mnt
OMNT=$TMP/nullno-mnt
FMNT=$TMP/nullnonf-mnt
EXT=$TMP/ext4
SQL=$TMP/sqlite
RAW=$TMP/results.txt
NOTES=$TMP/notes.txt
mkdir "$DATA" "$MNT" "$NMNT" "$UMNT" "$XMNT" "$OMNT" "$FMNT" "$EXT" "$SQL" ||
	exit 1
: >"$RAW"
: >"$NOTES"

T4DX_PID=
NULL_PID=
NULLNC_PID=
NULLXA_PID=
NULLNO_PID=
NULLNF_PID=
T4DX_OK=1       # 0 once t4dx could not be (re)mounted
T4DX_NSTART=0
HARNESS_RC=0

now_us() {
	local t=${EPOCHREALTIME//[!0-9]/}
	printf '%s\n' "$((10#$t))"
}

alive() {
	local st
	[[ -n $1 ]] || return 1
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	[[ ${st:0:1} != Z ]]
}

# wait_dead PID SECONDS: true once PID is gone (or a zombie).
wait_dead() {
	local pid=$1 deadline=$(($(now_us) + $2 * 1000000))
	while alive "$pid"; do
		(($(now_us) >= deadline)) && return 1
		sleep 0.05
	done
	return 0
}

is_mounted() {
	local mp rest
	while read -r _ mp rest; do
		[[ $(printf '%b' "$mp") == "$1" ]] && return 0
	done </proc/mounts
	return 1
}

mounts_under() {
	local mp rest
	while read -r _ mp rest; do
		mp=$(printf '%b' "$mp")
		[[ $mp == "$TMP" || $mp == "$TMP"/* ]] && printf '%s\n' "$mp"
	done </proc/mounts | sort -r
}

unmount_all() {
	local m
	while read -r m; do
		[[ -n $m ]] || continue
		timeout 20 fusermount3 -u "$m" 2>/dev/null ||
			fusermount3 -u -z "$m" 2>/dev/null ||
			umount -l "$m" 2>/dev/null || true
	done < <(mounts_under)
}

cleanup() {
	local pid
	trap - EXIT INT TERM HUP
	cd / || true
	# the bulk part's loop ext4, if it made one
	declare -F bulk_cleanup >/dev/null && bulk_cleanup
	unmount_all
	for pid in $T4DX_PID $NULL_PID $NULLNC_PID $NULLXA_PID $NULLNO_PID $NULLNF_PID; do
		alive "$pid" || continue
		wait_dead "$pid" 60 && continue
		kill -TERM "$pid" 2>/dev/null
		wait_dead "$pid" 5 && continue
		kill -KILL "$pid" 2>/dev/null
		wait_dead "$pid" 5 || true
	done
	# a daemon killed above leaves a dead mount behind
	unmount_all
	wait 2>/dev/null
	if [[ -n $(mounts_under) ]]; then
		echo "run-bench.sh: still mounted, keeping $TMP" >&2
	elif [[ ${BENCH_KEEP:-0} == 1 ]]; then
		echo "run-bench.sh: kept $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

harness_fail() {
	echo "run-bench.sh: harness failure: $*" >&2
	exit 1
}

note() {
	printf '%s\n' "$*" >>"$NOTES"
	printf '  note: %s\n' "$*" >&2
}

progress() {
	printf '[%4ds] %s\n' "$((SECONDS))" "$*" >&2
}

case $(stat -f -c %T "$TMP") in
tmpfs | ramfs) note "$TMP is on $(stat -f -c %T "$TMP"): the ext4 and SQLite baselines are not on a disk (set BENCH_TMPDIR)" ;;
esac
EXT_FS=$(df --output=fstype "$EXT" 2>/dev/null | tail -n 1)
[[ -n $EXT_FS ]] || EXT_FS=$(stat -f -c %T "$EXT")

CAN_DROP=0
if [[ $EUID == 0 && -w /proc/sys/vm/drop_caches ]]; then
	CAN_DROP=1
else
	note "not root: caches cannot be dropped, cold figures are warm"
fi

drop_caches() {
	sync
	((CAN_DROP)) && echo 3 >/proc/sys/vm/drop_caches
	return 0
}

# pin 1|0: put every daemon thread on PIN_CPU (and run the clients of
# bench_rec there), or let them run anywhere again.
PINNED=0
CLIENT=()
pin() {
	local pid mask=$PIN_CPU
	((PIN)) || return 0
	PINNED=$1
	if ((PINNED)); then
		CLIENT=(taskset -c "$PIN_CPU")
	else
		CLIENT=()
		mask=0-$((NCPU - 1))
	fi
	for pid in $T4DX_PID $NULL_PID $NULLNC_PID $NULLXA_PID $NULLNO_PID $NULLNF_PID; do
		alive "$pid" && taskset -a -p -c "$mask" "$pid" >/dev/null 2>&1
	done
	return 0
}

HAVE_SQLITE=0
"$BENCH" --help | grep -q sqlite-write && HAVE_SQLITE=1
((HAVE_SQLITE)) || note "bench built without SQLite: no SQLite baseline"

# ---- results ----------------------------------------------------------------

# rec KEY SYS LINE...: keep one result line of bench (or a figure of ours).
rec() {
	local key=$1 sys=$2
	shift 2
	printf 'key=%s sys=%s round=%s %s\n' "$key" "$sys" "${ROUND:-0}" "$*" >>"$RAW"
}

# field NAME LINE: the value of NAME=... in LINE.
field() {
	local f
	for f in $2; do
		[[ $f == "$1="* ]] && {
			printf '%s\n' "${f#*=}"
			return 0
		}
	done
	return 1
}

# bench_rec KEY SYS ARG...: run bench, keep its line; a failed run is kept
# as failed=1 (a workload that errs is the system's failure, not ours).
bench_rec() {
	local key=$1 sys=$2 out rc=0
	shift 2
	out=$("${CLIENT[@]}" "$BENCH" "$1" -l "$sys" "${@:2}" 2>"$TMP/bench.err") || rc=$?
	if ((rc == 2)); then
		cat "$TMP/bench.err" >&2
		harness_fail "bench $*: usage error"
	fi
	if ((rc != 0)) || [[ -z $out ]]; then
		rec "$key" "$sys" "failed=1 errors=1"
		note "$sys $key: bench $1 failed (status $rc): $(head -c 300 "$TMP/bench.err")"
		return 1
	fi
	out=${out%%$'\n'*}
	rec "$key" "$sys" "$out"
	if [[ $(field errors "$out") != 0 ]]; then
		note "$sys $key: $(field errors "$out") errors: $(head -c 300 "$TMP/bench.err")"
	fi
	LAST=$out
	return 0
}

# median KEY SYS FIELD: median over the rounds (empty if none).
median() {
	awk -v key="$1" -v sys="$2" -v f="$3" '
		{
			k = ""; s = ""; v = ""
			for (i = 1; i <= NF; i++) {
				split($i, kv, "=")
				if (kv[1] == "key") k = kv[2]
				else if (kv[1] == "sys") s = kv[2]
				else if (kv[1] == f) v = kv[2]
			}
			if (k == key && s == sys && v != "") a[n++] = v + 0
		}
		END {
			if (!n) exit
			for (i = 1; i < n; i++)
				for (j = i; j > 0 && a[j - 1] > a[j]; j--) {
					t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
				}
			m = n % 2 ? a[int(n / 2)] : (a[n / 2 - 1] + a[n / 2]) / 2
			printf "%.6g\n", m
		}' "$RAW"
}

# failed KEY SYS: true if a round of KEY on SYS failed or counted errors.
failed() {
	awk -v key="$1" -v sys="$2" '
		$0 ~ "^key=" key " sys=" sys " " &&
		($0 ~ / failed=1/ || ($0 ~ / errors=/ && $0 !~ / errors=0( |$)/)) { bad = 1 }
		END { exit !bad }' "$RAW"
}

# ---- t4dx ---------------------------------------------------------------------

T4DX_LOG=

# t4dx_start: start the daemon in the foreground, in the background, and
# wait for the ready mount; READY_S gets the seconds from the start to a
# ready mount.  Returns 1 (and marks t4dx failed) if it does not mount.
t4dx_start() {
	READY_S=
	if is_mounted "$MNT"; then
		note "t4dx: $MNT still mounted before a start"
		fusermount3 -u -z "$MNT" 2>/dev/null
	fi
	T4DX_NSTART=$((T4DX_NSTART + 1))
	T4DX_LOG=$TMP/t4dxfs.$T4DX_NSTART.log
	local t0 t1 rc=0
	t0=$(now_us)
	env --default-signal=INT "$T4DXFS" -f "$@" "$DATA" "$MNT" </dev/null \
		>"$T4DX_LOG" 2>&1 &
	T4DX_PID=$!
	"$BENCH" mountwait "$MNT" -m 120 -l t4dx >/dev/null 2>&1 || rc=$?
	t1=$(now_us)
	if ((rc != 0)) || ! alive "$T4DX_PID"; then
		T4DX_OK=0
		note "t4dx did not mount (start $T4DX_NSTART); log: $(tail -n 5 "$T4DX_LOG" | tr '\n' ' ')"
		alive "$T4DX_PID" && kill -TERM "$T4DX_PID" 2>/dev/null
		wait_dead "$T4DX_PID" 10 || kill -KILL "$T4DX_PID" 2>/dev/null
		is_mounted "$MNT" && fusermount3 -u -z "$MNT" 2>/dev/null
		return 1
	fi
	READY_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", (b - a) / 1e6 }')
	((PINNED)) && pin 1
	return 0
}

# t4dx_hwm: VmHWM of the running daemon in KiB.
t4dx_hwm() {
	awk '/^VmHWM:/ { print $2 }' "/proc/$T4DX_PID/status" 2>/dev/null
}

# t4dx_stop: unmount (the daemon flushes its memtable and exits); STOP_S
# gets the seconds from the unmount to the daemon's exit.
t4dx_stop() {
	local pid=$T4DX_PID t0 t1 st=0
	STOP_S=
	[[ -n $pid ]] || return 0
	t0=$(now_us)
	local deadline=$((t0 + 20000000))
	until fusermount3 -u "$MNT" 2>/dev/null; do
		is_mounted "$MNT" || break
		if (($(now_us) >= deadline)); then
			note "t4dx: fusermount3 -u kept failing; lazy unmount"
			fusermount3 -u -z "$MNT" 2>/dev/null
			break
		fi
		sleep 0.05
	done
	if ! wait_dead "$pid" 120; then
		note "t4dx: daemon still running 120 s after its unmount; killed"
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null || st=$?
	t1=$(now_us)
	STOP_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", (b - a) / 1e6 }')
	if ((st != 0)); then
		note "t4dx exited with status $st after unmount (start $T4DX_NSTART): $(tail -n 3 "$T4DX_LOG" | tr '\n' ' ')"
	fi
	T4DX_PID=
	return 0
}

# t4dx_kill9: crash the daemon and clear its dead mount.
t4dx_kill9() {
	local pid=$T4DX_PID
	[[ -n $pid ]] || return 0
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	is_mounted "$MNT" && fusermount3 -u -z "$MNT" 2>/dev/null
	T4DX_PID=
}

# t4dx_stat FIELD: a number of .ctl/stats.
t4dx_stat() {
	grep -o "\"$1\":[0-9]*" "$MNT/.ctl/stats" 2>/dev/null | head -n 1 | cut -d: -f2
}

# ---- request counts -------------------------------------------------------------

# opsnap SYS FILE: the FUSE request counters of SYS (t4dx, nullfs).
opsnap() {
	local f
	case $1 in
	t4dx) f=$MNT/.ctl/metrics ;;
	nullfs) f=$NMNT/.ops ;;
	nullfs-nocache) f=$UMNT/.ops ;;
	nullfs-xattr) f=$XMNT/.ops ;;
	nullfs-noopen) f=$OMNT/.ops ;;
	nullfs-noopen-nf) f=$FMNT/.ops ;;
	*) return 0 ;;
	esac
	sed -n 's/^[a-z0-9]*_ops_total{op="\([a-z]*\)"} \([0-9]*\)$/\1 \2/p' "$f" \
		>"$2" 2>/dev/null
	if [[ $1 == t4dx ]]; then
		printf 'wal_syncs %s\nwal_records %s\n' \
			"$(t4dx_stat wal_syncs)" "$(t4dx_stat wal_records)" >>"$2"
	fi
}

# opdiff SYS KEY BEFORE AFTER OPS: keep "op=n/op ..." for the table notes.
opdiff() {
	local s
	s=$(awk -v ops="$5" '
		NR == FNR { b[$1] = $2; next }
		{
			d = $2 - b[$1]
			if (d > 0 && ops > 0 && d / ops >= 0.0005)
				printf(d / ops >= 0.1 ? " %s=%.2f" : " %s=%.3f", $1, d / ops)
		}' \
		"$3" "$4")
	rec "$2" "$1" "reqs=1${s// /,}"
}

# ---- the systems ------------------------------------------------------------------

# dir_of SYS: the directory the file workloads use on SYS.
dir_of() {
	case $1 in
	t4dx) printf '%s\n' "$MNT/items" ;;
	nullfs) printf '%s\n' "$NMNT/items" ;;
	nullfs-nocache) printf '%s\n' "$UMNT/items" ;;
	nullfs-xattr) printf '%s\n' "$XMNT/items" ;;
	nullfs-noopen) printf '%s\n' "$OMNT/items" ;;
	nullfs-noopen-nf) printf '%s\n' "$FMNT/items" ;;
	ext4) printf '%s\n' "$EXT" ;;
	esac
}

# order SYS...: the systems, rotated by the round.
order() {
	local a=("$@") n=$# i
	for ((i = 0; i < n; i++)); do
		printf '%s\n' "${a[$(((i + ROUND) % n))]}"
	done
}

# usable SYS: false for a t4dx that no longer mounts, or for sqlite
# without it.
usable() {
	case $1 in
	t4dx) ((T4DX_OK)) ;;
	sqlite) ((HAVE_SQLITE)) ;;
	*) return 0 ;;
	esac
}

start_nullfs() {
	local mnt=$1 log=$2
	shift 2
	"$NULLFS" -f "$@" "$mnt" </dev/null >"$log" 2>&1 &
	local pid=$!
	"$BENCH" mountwait "$mnt" -m 30 >/dev/null 2>&1 ||
		harness_fail "nullfs did not mount at $mnt: $(cat "$log")"
	STARTED_PID=$pid
}

# populate SYS SUBDIR PREFIX N: N items of 1 KiB in SUBDIR (16 writers);
# ext4 without fsync, then one sync (setup, not a figure).
populate() {
	local sys=$1 sub=$2 prefix=$3 n=$4
	local per=$(((n + 15) / 16))
	usable "$sys" || return 0
	if [[ $sys == sqlite ]]; then
		bench_rec "populate-$sub" sqlite sqlite-populate "$SQL/bench.db" \
			-p "$sub/$prefix" -N "$n"
		return
	fi
	local d
	d=$(dir_of "$sys")/$sub
	mkdir -p "$d" || {
		note "$sys: mkdir $d failed"
		return 1
	}
	bench_rec "populate-$sub" "$sys" write "$d" -t 16 -n "$per" -p "$prefix"
	[[ $sys == ext4 ]] && sync
	return 0
}

# ---- start -------------------------------------------------------------------------

progress "private directory $TMP (on $EXT_FS), rounds=$ROUNDS scale=$SCALE"
if want main || want restart; then
start_nullfs "$NMNT" "$TMP/nullfs.log"
NULL_PID=$STARTED_PID
start_nullfs "$UMNT" "$TMP/nullfs-nocache.log" -o nocache
NULLNC_PID=$STARTED_PID
start_nullfs "$XMNT" "$TMP/nullfs-xattr.log" -o xattr
NULLXA_PID=$STARTED_PID
# the kernel's no-open mode (hot reads only): OPEN answers ENOSYS, and FLUSH
# too in the second one
start_nullfs "$OMNT" "$TMP/nullfs-noopen.log" -o noopen
NULLNO_PID=$STARTED_PID
start_nullfs "$FMNT" "$TMP/nullfs-noopen-nf.log" -o noopen,noflush
NULLNF_PID=$STARTED_PID
t4dx_start || note "t4dx: no t4dx figures"
ROUND=0
[[ -n $READY_S ]] && rec restart-empty t4dx "seconds=$READY_S"
fi

# BENCH_ONLY=restart: only the big writers' live WAL and kill -9 restart
# below (a try of that part alone, in minutes); BENCH_ONLY=search, only
# the search part.
if want main; then

# ext4 creates slow down for minutes after many deletes near them (in a
# file system without a journal, ext4 scans for recently deleted inodes
# before reusing one): a probe of plain creates shows what state the
# baseline directory is in.
mkdir "$EXT/probe" && bench_rec ext4-probe ext4 write "$EXT/probe" -t 1 -n 300 -p p

SYSTEMS=(t4dx nullfs ext4 sqlite)

# ---- 1. durable small writes ---------------------------------------------------------

progress "durable small writes: 1 and 16 writers, $ROUNDS rounds"
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	for threads in 1 16; do
		per=$W1
		pin 1
		((threads == 16)) && per=$W16 && pin 0
		for sys in $(order "${SYSTEMS[@]}"); do
			usable "$sys" || continue
			key=write$threads
			case $sys in
			sqlite)
				bench_rec "$key" sqlite sqlite-write "$SQL/bench.db" \
					-t "$threads" -n "$per" -p "w$ROUND-$threads/"
				;;
			*)
				d=$(dir_of "$sys")/w$ROUND-$threads
				mkdir "$d" || { note "$sys: mkdir $d failed"; continue; }
				sync_opt=
				[[ $sys == ext4 ]] && sync_opt=--fsync
				opsnap "$sys" "$TMP/ops.before"
				bench_rec "$key" "$sys" write "$d" -t "$threads" \
					-n "$per" -p i $sync_opt &&
					[[ $sys != ext4 ]] && {
					opsnap "$sys" "$TMP/ops.after"
					opdiff "$sys" "reqs-$key" "$TMP/ops.before" \
						"$TMP/ops.after" "$((threads * per))"
				}
				;;
			esac
		done
	done
done

pin 0

# ---- 2. reads as cat pays them ----------------------------------------------------------

progress "reads: populating $COLD_ITEMS items"
ROUND=0
for sys in t4dx nullfs nullfs-nocache nullfs-noopen nullfs-noopen-nf ext4 sqlite; do
	populate "$sys" cold c "$COLD_ITEMS"
done
HOT_ITEM=cold/c000000

pin 1
progress "hot reads, $ROUNDS rounds"
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	for sys in $(order t4dx nullfs nullfs-nocache nullfs-noopen nullfs-noopen-nf ext4 sqlite); do
		usable "$sys" || continue
		if [[ $sys == sqlite ]]; then
			bench_rec hot sqlite sqlite-read-hot "$SQL/bench.db" \
				-p "$HOT_ITEM" -n "$HOT_N" -m "$HOT_MAX"
			continue
		fi
		opsnap "$sys" "$TMP/ops.before"
		if bench_rec hot "$sys" read-hot "$(dir_of "$sys")/$HOT_ITEM" \
			-n "$HOT_N" -m "$HOT_MAX"; then
			opsnap "$sys" "$TMP/ops.after"
			opdiff "$sys" reqs-hot "$TMP/ops.before" "$TMP/ops.after" \
				"$(field ops "$LAST")"
		fi
	done
done

progress "cold reads ($COLD_N of $COLD_ITEMS after a remount / dropped caches), $ROUNDS rounds"
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	for sys in $(order t4dx t4dx-oscache nullfs nullfs-nocache ext4 sqlite); do
		case $sys in
		t4dx | t4dx-oscache)
			((T4DX_OK)) || continue
			t4dx_stop
			if [[ $sys == t4dx-oscache ]]; then
				# segments in the OS page cache, the daemon's own
				# caches empty
				find "$DATA" -type f -exec cat {} + >/dev/null
				t4dx_start || continue
			else
				drop_caches
				t4dx_start || continue
				# what the start read stays in the daemon only
				drop_caches
			fi
			rec "restart-cold-set" "$sys" "seconds=$READY_S"
			opsnap t4dx "$TMP/ops.before"
			bench_rec cold "$sys" read-cold "$MNT/items/cold" -p c \
				-N "$COLD_ITEMS" -n "$COLD_N" --seed "$ROUND" && {
				opsnap t4dx "$TMP/ops.after"
				opdiff "$sys" reqs-cold "$TMP/ops.before" \
					"$TMP/ops.after" "$(field ops "$LAST")"
			}
			;;
		sqlite)
			usable sqlite || continue
			drop_caches
			bench_rec cold sqlite sqlite-read-cold "$SQL/bench.db" \
				-p cold/c -N "$COLD_ITEMS" -n "$COLD_N" --seed "$ROUND"
			;;
		*)
			drop_caches
			opsnap "$sys" "$TMP/ops.before"
			bench_rec cold "$sys" read-cold "$(dir_of "$sys")/cold" -p c \
				-N "$COLD_ITEMS" -n "$COLD_N" --seed "$ROUND" && {
				opsnap "$sys" "$TMP/ops.after"
				opdiff "$sys" reqs-cold "$TMP/ops.before" \
					"$TMP/ops.after" "$(field ops "$LAST")"
			}
			;;
		esac
	done
done

# ---- 3. scale -----------------------------------------------------------------------------

pin 0
progress "scale: populating $SCALE items (16 writers each)"
ROUND=0
for sys in t4dx nullfs nullfs-xattr ext4 sqlite; do
	populate "$sys" scale s "$SCALE"
done
if ((T4DX_OK)); then
	HWM=$(t4dx_hwm)
	[[ -n $HWM ]] && rec rss t4dx "kib=$HWM phase=populate"
	rec rss-now t4dx "kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$T4DX_PID/status" 2>/dev/null) phase=populate"
fi

# check_count SYS KEY: the listing of the last bench line has SCALE items
check_count() {
	local n
	n=$(field items "$LAST")
	if [[ -n $n && $n != "$SCALE" ]]; then
		note "$1 $2: listed $n items, expected $SCALE"
		rec "$2" "$1" "failed=1 errors=1 miscount=$n"
	fi
}

# ls_round SYS: ls and ls -l of the scale directory, as C loops and as
# coreutils does them.
ls_round() {
	local sys=$1 d
	if [[ $sys == sqlite ]]; then
		bench_rec ls sqlite sqlite-ls "$SQL/bench.db" -p scale/ && check_count sqlite ls
		bench_rec ls-l sqlite sqlite-ls --long "$SQL/bench.db" -p scale/ && check_count sqlite ls-l
		return
	fi
	d=$(dir_of "$sys")/scale
	opsnap "$sys" "$TMP/ops.before"
	bench_rec ls "$sys" ls "$d" && check_count "$sys" ls
	opsnap "$sys" "$TMP/ops.after"
	opdiff "$sys" reqs-ls "$TMP/ops.before" "$TMP/ops.after" "$SCALE"
	opsnap "$sys" "$TMP/ops.before"
	bench_rec ls-l "$sys" ls --long "$d" && check_count "$sys" ls-l
	opsnap "$sys" "$TMP/ops.after"
	opdiff "$sys" reqs-ls-l "$TMP/ops.before" "$TMP/ops.after" "$SCALE"
	bench_rec ls-cmd "$sys" run -- ls "$d"
	opsnap "$sys" "$TMP/ops.before"
	bench_rec ls-l-cmd "$sys" run -- ls -l "$d"
	opsnap "$sys" "$TMP/ops.after"
	opdiff "$sys" reqs-ls-l-cmd "$TMP/ops.before" "$TMP/ops.after" "$SCALE"
}

progress "ls / ls -l of $SCALE items (warm), $ROUNDS rounds"
pin 1
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	for sys in $(order "${SYSTEMS[@]}" nullfs-xattr); do
		usable "$sys" || continue
		ls_round "$sys"
	done
done

ROUND=0
if ((T4DX_OK)); then
	HWM=$(t4dx_hwm)
	[[ -n $HWM ]] && rec rss t4dx "kib=$HWM phase=populate+ls"
	rec wal-state t4dx "memtable_items=$(t4dx_stat memtable_items) segments=$(t4dx_stat segments) items=$(t4dx_stat items)"
fi
NHWM=$(awk '/^VmHWM:/ { print $2 }' "/proc/$NULL_PID/status" 2>/dev/null)
[[ -n $NHWM ]] && rec rss nullfs "kib=$NHWM"

progress "restarts with $SCALE items and a cold ls -l, $ROUNDS rounds"
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	for sys in $(order t4dx nullfs ext4); do
		usable "$sys" || continue
		case $sys in
		t4dx)
			t4dx_stop
			rec unmount t4dx "seconds=$STOP_S"
			drop_caches
			# the start itself unpinned, then pinned for the ls -l
			pin 0
			t4dx_start
			pin 1
			[[ -n $READY_S ]] || continue
			rec restart-clean t4dx "seconds=$READY_S"
			;;
		*)
			drop_caches
			;;
		esac
		d=$(dir_of "$sys")/scale
		opsnap "$sys" "$TMP/ops.before"
		bench_rec ls-l-cold "$sys" ls --long "$d" && check_count "$sys" ls-l-cold
		opsnap "$sys" "$TMP/ops.after"
		opdiff "$sys" reqs-ls-l-cold "$TMP/ops.before" "$TMP/ops.after" "$SCALE"
		if [[ $sys == t4dx ]]; then
			HWM=$(t4dx_hwm)
			[[ -n $HWM ]] && rec rss t4dx "kib=$HWM phase=restart+ls-l"
		fi
	done
done

pin 0
if ((T4DX_OK)); then
	progress "crash restarts: $WAL_EXTRA items in the WAL, kill -9, $ROUNDS rounds"
	ROUND=0
	mkdir -p "$MNT/items/wal" &&
		bench_rec populate-wal t4dx write "$MNT/items/wal" -t 16 \
			-n "$(((WAL_EXTRA + 15) / 16))" -p x
	rec wal-state-crash t4dx "memtable_items=$(t4dx_stat memtable_items) segments=$(t4dx_stat segments) items=$(t4dx_stat items)"
	for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
		((T4DX_OK)) || break
		t4dx_kill9
		drop_caches
		t4dx_start || break
		rec restart-crash t4dx "seconds=$READY_S replayed=$(sed -n 's/.*: \([0-9]*\) WAL records replayed.*/\1/p' "$T4DX_LOG" | head -n 1)"
		LAST=$("$BENCH" ls "$MNT/items/scale" -l t4dx 2>/dev/null)
		check_count t4dx ls-after-crash
		HWM=$(t4dx_hwm)
		[[ -n $HWM ]] && rec rss t4dx "kib=$HWM phase=crash-restart"
	done
	((T4DX_OK)) && t4dx_stop
fi

# The live WAL is bounded by wal.checkpoint_bytes whatever was written:
# rewrites of one file (one memtable item, so the memtable limits are never
# reached) and then a crash restart (issue 10).
if ((T4DX_OK)); then
	progress "crash restarts after $REWRITES rewrites of a 1 MiB file, $ROUNDS rounds"
	head -c 1048576 /dev/urandom >"$TMP/rewrite.bin"
	for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
		t4dx_start || break
		for ((i = 0; i < REWRITES; i++)); do
			cp "$TMP/rewrite.bin" "$MNT/items/rewrite" || break
		done
		rec rewrite-state t4dx "wal_bytes=$(t4dx_stat wal_bytes) archive_bytes=$(t4dx_stat archive_bytes)"
		t4dx_kill9
		drop_caches
		t4dx_start || break
		rec restart-rewrites t4dx "seconds=$READY_S replayed=$(sed -n 's/.*: \([0-9]*\) WAL records replayed.*/\1/p' "$T4DX_LOG" | head -n 1)"
		cmp -s "$TMP/rewrite.bin" "$MNT/items/rewrite" ||
			note "t4dx: the rewritten file differs after the crash restart"
		t4dx_stop
	done
fi

fi  # BENCH_ONLY
# The live WAL with big writers, and the restart after a kill -9 at its
# peak (issue 10): BIG_WRITERS threads each rewrite their own 16 MiB file
# BIG_TIMES times (cp-like: open O_TRUNC, write, close; each close is a
# durable put) on a fresh store with the default config; bench rewrite
# samples the live log (DATA/wal/*, not the archive) every 10 ms.  A first
# run gives the peak; a second run of the same writers is killed with
# SIGKILL as soon as the live log reaches 90% of it (or at its end).  Then
# the restart (exec to a ready mount: the same moment `t4dxfs` without -f
# returns) and the mount's first ls.  Its baseline, in the same run: the
# restart after a kill -9 of an empty store.
BIG_WRITERS=${BIG_WRITERS:-8}
BIG_TIMES=${BIG_TIMES:-12}
BIG_ROUNDS=${BIG_ROUNDS:-3}
if [[ ${BENCH_QUICK:-0} == 1 ]]; then
	BIG_TIMES=${BIG_TIMES_QUICK:-4}
	BIG_ROUNDS=${BENCH_ROUNDS:-1}
fi
if want restart && ((T4DX_OK)); then
	progress "live WAL and kill -9 at its peak: $BIG_WRITERS writers x $BIG_TIMES x 16 MiB, $BIG_ROUNDS rounds"
	t4dx_stop       # (BENCH_ONLY: still the first start's)
	SAVED_DATA=$DATA
	for ((ROUND = 1; ROUND <= BIG_ROUNDS; ROUND++)); do
		# the baseline: an empty store
		DATA=$TMP/empty-data
		rm -rf "$DATA" && mkdir "$DATA"
		t4dx_start || break
		t4dx_kill9
		t4dx_start || break
		rec restart-empty-kill t4dx "seconds=$READY_S"
		t4dx_stop
		# the big writers
		DATA=$TMP/big-data
		rm -rf "$DATA" && mkdir "$DATA"
		t4dx_start || break
		mkdir -p "$MNT/items/big"
		out=$("$BENCH" rewrite "$MNT/items/big" -t "$BIG_WRITERS" -n "$BIG_TIMES" \
			-s $((16 << 20)) -w "$DATA/wal" -p f -l t4dx) || note "t4dx: bench rewrite failed"
		peak=$(field wal_peak "$out")
		rec big-peak t4dx "wal_peak=$peak errors=$(field errors "$out") seconds=$(field seconds "$out")"
		[[ -n $peak ]] || peak=0
		out=$("$BENCH" rewrite "$MNT/items/big" -t "$BIG_WRITERS" -n "$BIG_TIMES" \
			-s $((16 << 20)) -w "$DATA/wal" -p f -l t4dx \
			-k "$T4DX_PID" -b $((peak * 9 / 10))) || note "t4dx: bench rewrite failed"
		killed=$(field killed "$out")
		at=$(field wal_at_kill "$out")
		((killed)) || at=$(du -sb --exclude=archive "$DATA/wal" | cut -f1)
		rec big-kill t4dx "wal_peak=$(field wal_peak "$out") wal_at_kill=$at killed=$killed"
		t4dx_kill9
		drop_caches
		t4dx_start || break
		replayed=$(sed -n 's/.*: \([0-9]*\) WAL records replayed.*/\1/p' "$T4DX_LOG" | head -n 1)
		rec restart-big t4dx "seconds=$READY_S replayed=$replayed"
		if bench_rec ls-after-big t4dx ls "$MNT/items/big"; then
			[[ $(field items "$LAST") == "$BIG_WRITERS" ]] ||
				note "t4dx: ls after the big crash restart: $(field items "$LAST") of $BIG_WRITERS files"
		fi
		t4dx_stop
	done
	DATA=$SAVED_DATA
fi

if want main; then

# Peak memory for one large item (issue 10: at most ~1.5x its size): a
# fresh daemon, one file of ITEM_MIB written and closed; VmHWM before and
# after.
if ((T4DX_OK)); then
	progress "peak RSS while one ${ITEM_MIB} MiB item is written, $ROUNDS rounds"
	printf '{"limits":{"max_item_bytes":268435455}}\n' >"$TMP/big-item.json"
	head -c $((ITEM_MIB << 20)) /dev/urandom | base64 -w 0 | head -c $((ITEM_MIB << 20)) >"$TMP/big-item.txt"
	for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
		t4dx_start -o "config=$TMP/big-item.json" || break
		h0=$(t4dx_hwm)
		cp "$TMP/big-item.txt" "$MNT/items/big-item" || note "t4dx: the big item could not be written"
		h1=$(t4dx_hwm)
		rec rss-item t4dx "kib_before=$h0 kib=$h1 ratio=$(awk -v a="$h0" -v b="$h1" -v m="$ITEM_MIB" 'BEGIN { printf "%.2f", (b - a) / (m * 1024) }')"
		rm -f "$MNT/items/big-item"
		t4dx_stop
	done
fi

# Memory of open files' writes (issue 10: limits.write_buffer_bytes bounds
# it): HOLD_FILES files of 16 MiB written while all stay open, on a daemon
# whose budget is HOLD_BUDGET_MIB; VmHWM before and after.
if ((T4DX_OK)); then
	progress "peak RSS with $HOLD_FILES files of 16 MiB written while open, write_buffer_bytes $HOLD_BUDGET_MIB MiB, $ROUNDS rounds"
	printf '{"limits":{"write_buffer_bytes":%d}}\n' $((HOLD_BUDGET_MIB << 20)) >"$TMP/hold.json"
	for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
		t4dx_start -o "config=$TMP/hold.json" || break
		h0=$(t4dx_hwm)
		out=$("$BENCH" hold "$MNT/items" -n "$HOLD_FILES" -s $((16 << 20)) -p hold) ||
			note "t4dx: bench hold failed"
		h1=$(t4dx_hwm)
		rec rss-hold t4dx "kib_before=$h0 kib=$h1 growth_mib=$(awk -v a="$h0" -v b="$h1" 'BEGIN { printf "%.1f", (b - a) / 1024 }') $(printf '%s' "$out" | tr ' ' '\n' | grep -E '^(refused|bytes)=' | tr '\n' ' ')"
		t4dx_stop
	done
fi

fi  # BENCH_ONLY

# ---- the search part (issue 13) ----------------------------------------------------------------

# shellcheck source=tools/bench/search.sh
source "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/search.sh" ||
	harness_fail "cannot read search.sh"
want search && search_measure

# ---- the bulk loads (issue 14) -----------------------------------------------------------------

# shellcheck source=tools/bench/bulk.sh
source "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/bulk.sh" ||
	harness_fail "cannot read bulk.sh"
want bulk && bulk_measure

# ---- the table ---------------------------------------------------------------------------------

cp "$RAW" "$RESULTS" 2>/dev/null || note "cannot write $RESULTS"

# fmt VALUE SCALE DIGITS: VALUE * SCALE with DIGITS decimals, "-" if empty.
fmt() {
	[[ -n $1 ]] || {
		printf -- '-'
		return
	}
	awk -v v="$1" -v s="$2" -v d="$3" 'BEGIN { printf "%.*f", d, v * s }'
}

# cell KEY SYS FIELD SCALE DIGITS: the median, FAILED if a round failed.
cell() {
	usable "$2" || {
		printf -- '-'
		return
	}
	if failed "$1" "$2"; then
		printf 'FAILED'
		return
	fi
	fmt "$(median "$1" "$2" "$3")" "$4" "$5"
}

# ratio A B: A / B with two decimals and an x, "-" when either is missing.
ratio() {
	if [[ -z $1 || -z $2 ]]; then
		printf -- '-'
		return
	fi
	awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2fx", a / b }'
}

# verdict A B OP LIMIT: "yes" if A/B OP LIMIT holds ("-" if unknown).
verdict() {
	if [[ -z $1 || -z $2 ]]; then
		printf -- '-'
		return
	fi
	awk -v a="$1" -v b="$2" -v op="$3" -v l="$4" 'BEGIN {
		if (b == 0) { print "-"; exit }
		r = a / b
		ok = op == ">=" ? r >= l : r <= l
		print ok ? "yes" : "NO" }'
}

m() {
	failed "$1" "$2" && return
	median "$1" "$2" "$3"
}

ROW_FMT='%-34s %10s %10s %10s %10s %10s  %-24s %-20s %s\n'
row() {
	# shellcheck disable=SC2059
	printf "$ROW_FMT" "$@"
}

{
	echo
	echo "t4dx benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -sr), $(nproc) CPUs, $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
	if want main || want restart; then
	echo "baselines on $EXT_FS ($TMP); medians of $ROUNDS rounds alternating the systems; scale $SCALE items"
	echo "t4dx: $T4DXFS; nullfs: no-I/O in-memory FUSE (tuned: long timeouts, keep_cache, noflush, readdirplus); nullfs-nc: -o nocache"
	echo "hot reads also on nullfs -o noopen (the kernel's no-open mode: no OPEN/RELEASE, FLUSH at close) and -o noopen,noflush (no FLUSH either)"
	l=$(awk '$1 == "key=ext4-probe" { print; exit }' "$RAW")
	[[ -n $l ]] && echo "ext4 probe: plain create+write+close p50 $(field p50_us "$l") us (a fresh ext4 here: ~25 us; slower right after mass deletes nearby)"
	if ((PIN)); then
		echo "1 writer, reads and ls: client and daemons pinned to CPU $PIN_CPU; 16 writers, populates, restarts unpinned"
	else
		echo "nothing pinned (BENCH_PIN=0): single-threaded figures depend on where the scheduler puts the daemon"
	fi
	echo
	row "workload" t4dx nullfs nullfs-nc ext4 sqlite "ratio" "target" "met"
	row "--------" ---- ------ --------- ---- ------ "-----" "------" "---"

	for t in 1 16; do
		T=$(m write$t t4dx ops_per_s)
		N=$(m write$t nullfs ops_per_s)
		S=$(m write$t sqlite ops_per_s)
		if ((t == 16)); then
			r="$(ratio "$T" "$S") sqlite, $(ratio "$T" "$N") null"
			tg=">=4x sqlite, >=0.7x null"
			v="$(verdict "$T" "$S" '>=' 4) $(verdict "$T" "$N" '>=' 0.7)"
		else
			r="$(ratio "$T" "$S") sqlite, $(ratio "$T" "$N") null"
			tg=
			v=
		fi
		row "write 1 KiB, $t writer(s) [items/s]" \
			"$(cell write$t t4dx ops_per_s 1 0)" "$(cell write$t nullfs ops_per_s 1 0)" - \
			"$(cell write$t ext4 ops_per_s 1 0)" "$(cell write$t sqlite ops_per_s 1 0)" \
			"$r" "$tg" "$v"
		row "  latency p50 [us]" \
			"$(cell write$t t4dx p50_us 1 0)" "$(cell write$t nullfs p50_us 1 0)" - \
			"$(cell write$t ext4 p50_us 1 0)" "$(cell write$t sqlite p50_us 1 0)" "" "" ""
		row "  latency p99 [us]" \
			"$(cell write$t t4dx p99_us 1 0)" "$(cell write$t nullfs p99_us 1 0)" - \
			"$(cell write$t ext4 p99_us 1 0)" "$(cell write$t sqlite p99_us 1 0)" "" "" ""
	done

	T=$(m hot t4dx p50_us)
	N=$(m hot nullfs p50_us)
	U=$(m hot nullfs-nocache p50_us)
	row "hot read (cat) p50 [us]" \
		"$(cell hot t4dx p50_us 1 1)" "$(cell hot nullfs p50_us 1 1)" "$(cell hot nullfs-nocache p50_us 1 1)" \
		"$(cell hot ext4 p50_us 1 1)" "$(cell hot sqlite p50_us 1 1)" \
		"$(ratio "$T" "$N") null, $(ratio "$T" "$U") nc" "<=0.5x null" \
		"$(verdict "$T" "$N" '<=' 0.5) ($(verdict "$T" "$U" '<=' 0.5) vs nc)"
	O=$(m hot nullfs-noopen p50_us)
	F=$(m hot nullfs-noopen-nf p50_us)
	row "  nullfs -o noopen [us]" "" "$(cell hot nullfs-noopen p50_us 1 1)" "" "" "" \
		"$(ratio "$O" "$N") of null" "" ""
	row "  nullfs -o noopen,noflush [us]" "" "$(cell hot nullfs-noopen-nf p50_us 1 1)" "" "" "" \
		"$(ratio "$F" "$N") of null" "" ""

	T=$(m cold t4dx p50_us)
	O=$(m cold t4dx-oscache p50_us)
	N=$(m cold nullfs p50_us)
	U=$(m cold nullfs-nocache p50_us)
	row "cold read (cat) p50 [us]" \
		"$(cell cold t4dx p50_us 1 1)" "$(cell cold nullfs p50_us 1 1)" "$(cell cold nullfs-nocache p50_us 1 1)" \
		"$(cell cold ext4 p50_us 1 1)" "$(cell cold sqlite p50_us 1 1)" \
		"$(ratio "$T" "$N") null" "<=1.5x null" "$(verdict "$T" "$N" '<=' 1.5)"
	row "  t4dx, segments in OS cache" "$(cell cold t4dx-oscache p50_us 1 1)" "" "" "" "" \
		"$(ratio "$O" "$N") null" "<=1.5x null" "$(verdict "$O" "$N" '<=' 1.5)"
	row "  cold read p99 [us]" \
		"$(cell cold t4dx p99_us 1 0)" "$(cell cold nullfs p99_us 1 0)" "$(cell cold nullfs-nocache p99_us 1 0)" \
		"$(cell cold ext4 p99_us 1 0)" "$(cell cold sqlite p99_us 1 0)" "" "" ""

	T=$(m ls t4dx seconds)
	N=$(m ls nullfs seconds)
	row "ls $SCALE, getdents+sort [ms]" \
		"$(cell ls t4dx seconds 1000 0)" "$(cell ls nullfs seconds 1000 0)" - \
		"$(cell ls ext4 seconds 1000 0)" "$(cell ls sqlite seconds 1000 0)" \
		"$(ratio "$T" "$N") null" "<=1.5x null" "$(verdict "$T" "$N" '<=' 1.5)"
	T=$(m ls-l t4dx seconds)
	N=$(m ls-l nullfs seconds)
	row "ls -l $SCALE, +lstat each [ms]" \
		"$(cell ls-l t4dx seconds 1000 0)" "$(cell ls-l nullfs seconds 1000 0)" - \
		"$(cell ls-l ext4 seconds 1000 0)" "$(cell ls-l sqlite seconds 1000 0)" \
		"$(ratio "$T" "$N") null" "<=1.0x null" "$(verdict "$T" "$N" '<=' 1.0)"
	T=$(m ls-cmd t4dx seconds)
	N=$(m ls-cmd nullfs seconds)
	row "  ls (coreutils) [ms]" \
		"$(cell ls-cmd t4dx seconds 1000 0)" "$(cell ls-cmd nullfs seconds 1000 0)" - \
		"$(cell ls-cmd ext4 seconds 1000 0)" - "$(ratio "$T" "$N") null" "" ""
	T=$(m ls-l-cmd t4dx seconds)
	N=$(m ls-l-cmd nullfs seconds)
	row "  ls -l (coreutils) [ms]" \
		"$(cell ls-l-cmd t4dx seconds 1000 0)" "$(cell ls-l-cmd nullfs seconds 1000 0)" - \
		"$(cell ls-l-cmd ext4 seconds 1000 0)" - "$(ratio "$T" "$N") null" "" ""
	X=$(m ls-l-cmd nullfs-xattr seconds)
	row "    vs nullfs -o xattr [ms]" "" "$(cell ls-l-cmd nullfs-xattr seconds 1000 0)" "" "" "" \
		"$(ratio "$T" "$X") null-xattr" "" ""
	T=$(m ls-l-cold t4dx seconds)
	N=$(m ls-l-cold nullfs seconds)
	row "  ls -l after restart/drop [ms]" \
		"$(cell ls-l-cold t4dx seconds 1000 0)" "$(cell ls-l-cold nullfs seconds 1000 0)" - \
		"$(cell ls-l-cold ext4 seconds 1000 0)" - "$(ratio "$T" "$N") null" "" ""

	T=$(m restart-clean t4dx seconds)
	row "restart, $SCALE items, clean [s]" "$(cell restart-clean t4dx seconds 1 3)" "" "" "" "" "" "<3 s" \
		"$([[ -n $T ]] && awk -v t="$T" 'BEGIN { print t < 3 ? "yes" : "NO" }')"
	T=$(m restart-crash t4dx seconds)
	row "restart after kill -9 (WAL) [s]" "$(cell restart-crash t4dx seconds 1 3)" "" "" "" "" \
		"replays $(median restart-crash t4dx replayed) rec" "<3 s" \
		"$([[ -n $T ]] && awk -v t="$T" 'BEGIN { print t < 3 ? "yes" : "NO" }')"
	T=$(m restart-rewrites t4dx seconds)
	row "restart after kill -9, $REWRITES x 1 MiB rewrites [s]" "$(cell restart-rewrites t4dx seconds 1 3)" "" "" "" "" \
		"replays $(median restart-rewrites t4dx replayed) rec" "<3 s" \
		"$([[ -n $T ]] && awk -v t="$T" 'BEGIN { print t < 3 ? "yes" : "NO" }')"
	row "  live WAL / archive before the kill [MiB]" "$(fmt "$(median rewrite-state t4dx wal_bytes)" 0.00000095367431640625 1) / $(fmt "$(median rewrite-state t4dx archive_bytes)" 0.00000095367431640625 1)" "" "" "" "" "" "<=64+ / <=256" ""
	T=$(m restart-big t4dx seconds)
	row "restart after kill -9, $BIG_WRITERS w x $BIG_TIMES x 16 MiB [s]" "$(cell restart-big t4dx seconds 1 3)" "" "" "" "" \
		"empty store $(fmt "$(median restart-empty-kill t4dx seconds)" 1 3) s" "<3 s" \
		"$([[ -n $T ]] && awk -v t="$T" 'BEGIN { print t < 3 ? "yes" : "NO" }')"
	row "  replayed, first ls [rec, ms]" "$(median restart-big t4dx replayed), $(cell ls-after-big t4dx seconds 1000 1)" "" "" "" "" "" "" ""
	row "  live WAL peak / at the kill [MiB]" "$(fmt "$(median big-peak t4dx wal_peak)" 0.00000095367431640625 1) / $(fmt "$(median big-kill t4dx wal_at_kill)" 0.00000095367431640625 1)" "" "" "" "" "checkpoint 64 MiB" "~64" ""
	row "  unmount (memtable flush) [s]" "$(cell unmount t4dx seconds 1 3)" "" "" "" "" "" "" ""
	P=$(awk '$0 ~ /^key=rss sys=t4dx / { for (i = 1; i <= NF; i++) if ($i ~ /^kib=/) { v = substr($i, 5) + 0; if (v > mx) mx = v } } END { if (mx) print mx }' "$RAW")
	row "peak RSS growth, $HOLD_FILES x 16 MiB held open [MiB]" "$(median rss-hold t4dx growth_mib)" "" "" "" "" "budget $HOLD_BUDGET_MIB MiB" "<=$((HOLD_BUDGET_MIB * 3 / 2))" \
		"$(awk -v v="$(median rss-hold t4dx growth_mib)" -v t="$((HOLD_BUDGET_MIB * 3 / 2))" 'BEGIN { print (v != "" && v + 0 <= t) ? "yes" : "NO" }')"
	row "peak RSS growth writing one ${ITEM_MIB} MiB item [x its size]" "$(median rss-item t4dx ratio)" "" "" "" "" "" "<=1.5" \
		"$(awk -v r="$(median rss-item t4dx ratio)" 'BEGIN { if (r == "") print ""; else print r <= 1.5 ? "yes" : "NO" }')"
	NP=$(median rss nullfs kib)
	row "peak RSS (VmHWM) [MiB]" "$(fmt "$P" 0.0009765625 1)" "$(fmt "$NP" 0.0009765625 1)" "" "" "" "" "<160 MiB" \
		"$([[ -n $P ]] && awk -v p="$P" 'BEGIN { print p < 160 * 1024 ? "yes" : "NO" }')"
	echo
	echo "ratios: writes are throughput (t4dx / baseline, higher is better); reads, ls and"
	echo "ls -l are times (t4dx / baseline, lower is better).  nc = nullfs -o nocache;"
	echo "null-xattr = nullfs -o xattr (answers getxattr ENODATA as a file system with"
	echo "attributes must; plain nullfs answers ENOSYS once and the kernel stops asking)."
	echo "nullfs -o noopen[,noflush]: the floor of a hot cat through FUSE (ratio: variant /"
	echo "nullfs; no target).  Without OPEN a cat still costs the FLUSH of its close; none"
	echo "only if FLUSH answers ENOSYS, which a file system that commits at close cannot do."

	echo
	echo "FUSE requests per operation (round 1; t4dx also WAL records and fdatasyncs):"
	for k in write1 write16 hot cold ls ls-l ls-l-cmd ls-l-cold; do
		for sys in t4dx t4dx-oscache nullfs nullfs-nocache nullfs-noopen \
			nullfs-noopen-nf nullfs-xattr; do
			l=$(awk -v k="reqs-$k" -v s="$sys" '$1 == "key=" k && $2 == "sys=" s { print; exit }' "$RAW")
			[[ -n $l ]] || continue
			r=$(field reqs "$l")
			r=${r#1,}
			[[ $r == 1 ]] && r="(none)"
			printf '  %-10s %-16s %s\n' "$k" "$sys" "${r//,/ }"
		done
	done
	echo
	s=$(awk '$1 == "key=rss" && $2 == "sys=t4dx" {
			k = 0; ph = ""
			for (i = 4; i <= NF; i++) {
				if ($i ~ /^kib=/) k = substr($i, 5) + 0
				if ($i ~ /^phase=/) ph = substr($i, 7)
			}
			if (!(ph in mx)) order[n++] = ph
			if (k > mx[ph]) mx[ph] = k
		}
		END { for (i = 0; i < n; i++) printf " %s %.1f MiB;", order[i], mx[order[i]] / 1024 }' "$RAW")
	[[ -n $s ]] && echo "t4dx VmHWM (peak RSS) after:$s"
	s=$(awk '$1 == "key=wal-state" { $1 = $2 = $3 = ""; print; exit }' "$RAW")
	[[ -n $s ]] && echo "t4dx before the clean restarts:$s"
	s=$(awk '$1 == "key=wal-state-crash" { $1 = $2 = $3 = ""; print; exit }' "$RAW")
	[[ -n $s ]] && echo "t4dx before the crash restarts:$s"
	for sys in t4dx nullfs ext4 sqlite; do
		l=$(awk -v s="$sys" '$1 == "key=populate-scale" && $2 == "sys=" s { print; exit }' "$RAW")
		[[ -n $l ]] && printf 'populate %s items on %-7s %8.1f s (%s items/s)\n' \
			"$SCALE" "$sys" "$(field seconds "$l")" "$(field ops_per_s "$l")"
	done
	fi  # main or restart
	want search && search_table
	want bulk && bulk_table
	if [[ -s $NOTES ]]; then
		echo
		echo "notes:"
		sed 's/^/  /' "$NOTES"
	fi
	echo
	echo "raw results: $RESULTS; total time ${SECONDS} s"
}

exit "$HARNESS_RC"
