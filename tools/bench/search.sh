# search.sh - the search part of the t4dx benchmark (issue 13), sourced by
# run-bench.sh, whose helpers it uses (rec, note, t4dx_start...).
#
#   1. In-process (vecbench index), once for each set of SEARCH_N vectors
#      of dim 256 (uniformly random unit vectors; clustered ones, 1,000
#      centres plus noise), built with the M and ef_construction of the
#      configuration (or 16 / 100 / 64 where core has no such keys yet):
#      build time per 10,000 items, recall@10 of the index against exact
#      search over SEARCH_Q queries drawn like the data, query latency of
#      both, index bytes, peak RSS; then the index tuned as core tunes
#      a loaded one (vector.min_recall): its time, the recall it
#      measured, the mode it chose, and the scan mode's recall and
#      latency on the same queries.
#   2. Through the mount, on the clustered set: a store of SEARCH_N items
#      with those vectors set by hand (vecbench store, vector.embedder
#      off), the engine's own search of it in-process, then t4dxfs on it
#      and a timed listing of search/@ID?k=10 for SEARCH_Q items (the
#      listing as ls does it, opendir/readdir/closedir, in one process),
#      next to the same queries answered by the index in-process; the
#      daemon's VmHWM after them; then the time of `echo nrem >
#      .ctl/compact` on that store and on the same items without vectors.
#      The same store and listing on the uniform set (no nrem there).
#   3. The 16-writer durable write workload of part 1 of run-bench.sh on
#      fresh stores with vector.embedder "builtin" and "off", alternating,
#      ROUNDS rounds.
#
# BENCH_ONLY=embedder runs part 3 alone; BENCH_ONLY=nrem, part 2 alone.
#
# Environment (besides run-bench.sh's):
#   BENCH_SEARCH_N=N        vectors and items (default 100000; quick 10000)
#   BENCH_SEARCH_QUERIES=N  queries (default 200)
#
# Uniformly random vectors at dim 256 are the worst case of any graph
# index (every point is about as far from a query as every other): a
# segment whose graph measures below vector.min_recall is searched by a
# scan of 8-bit codes instead (core/qcode.c), so the recall target
# (>= 0.95) is checked through the engine on both sets.
# (ROUNDS, W16, TMP, MNT, DATA... are run-bench.sh's)
# shellcheck shell=bash disable=SC2317,SC2153

if [[ ${BENCH_QUICK:-0} == 1 ]]; then
	SEARCH_N=${BENCH_SEARCH_N:-10000}
else
	SEARCH_N=${BENCH_SEARCH_N:-100000}
fi
SEARCH_Q=${BENCH_SEARCH_QUERIES:-200}
SEARCH_K=10

# vec_rec KEY ARG...: run vecbench, keep its line as bench_rec does (a
# failed run is failed=1, a usage error is the harness's).
vec_rec() {
	local key=$1 out rc=0
	shift
	out=$("${CLIENT[@]}" "$VECBENCH" "$@" 2>"$TMP/vecbench.err") || rc=$?
	if ((rc == 2)); then
		cat "$TMP/vecbench.err" >&2
		harness_fail "vecbench $*: usage error"
	fi
	if ((rc != 0)) || [[ -z $out ]]; then
		rec "$key" t4dx "failed=1 errors=1"
		note "search $key: vecbench $1 failed (status $rc): $(head -c 300 "$TMP/vecbench.err")"
		return 1
	fi
	out=${out%%$'\n'*}
	rec "$key" t4dx "$out"
	return 0
}

# ctl_compact KEY: time `echo nrem > .ctl/compact` on the running daemon
# (the write returns when the compaction is done); one that answers EBUSY
# (a compaction already running) is tried again for up to 60 s.
ctl_compact() {
	local key=$1 t0 t1 deadline
	deadline=$(($(now_us) + 60000000))
	while :; do
		t0=$(now_us)
		if { printf 'nrem\n' >"$MNT/.ctl/compact"; } 2>"$TMP/ctl.err"; then
			t1=$(now_us)
			rec "$key" t4dx "seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", (b - a) / 1e6 }') segments=$(t4dx_stat segments)"
			return 0
		fi
		if ! grep -qi busy "$TMP/ctl.err" || (($(now_us) >= deadline)); then
			rec "$key" t4dx "failed=1 errors=1"
			note "search $key: echo nrem > .ctl/compact: $(head -c 200 "$TMP/ctl.err")"
			return 1
		fi
		sleep 0.1
	done
}

# search_part PART: the run includes PART of this file (index, queries,
# nrem, embedder): all of them unless BENCH_ONLY names one (nrem comes
# with the queries, which load the indexes an nrem then holds with its
# own).
search_part() {
	case ${BENCH_ONLY:-} in
	embedder) [[ $1 == embedder ]] ;;
	nrem) [[ $1 == nrem || $1 == queries ]] ;;
	*) true ;;
	esac
}

# search_uniform: the store and the listing through the mount on the
# uniform set (keys store-uniform, query-uniform, search-rss-uniform).
search_uniform() {
	progress "search: a store of $SEARCH_N items with uniform vectors, and ls of search/@ID?k=$SEARCH_K through the mount"
	rm -rf "$TMP/search-udata"
	vec_rec store-uniform store "$TMP/search-udata" -n "$SEARCH_N" \
		-S uniform -c "$TMP/search.json" -q "$SEARCH_Q" \
		-k "$SEARCH_K" --ids "$TMP/search-u.ids"
	DATA=$TMP/search-udata
	if [[ -s $TMP/search-u.ids ]] && t4dx_start -o "config=$TMP/search.json"; then
		pin 1
		vec_rec query-uniform query "$MNT" --ids "$TMP/search-u.ids" \
			-k "$SEARCH_K" -m 600
		pin 0
		rec search-rss-uniform t4dx "kib=$(t4dx_hwm) phase=queries"
		rec search-modes-uniform t4dx "$(t4dx_modes)"
		t4dx_stop
	else
		rec query-uniform t4dx "failed=1 errors=1"
	fi
	rm -rf "$TMP/search-udata"
}

# t4dx_modes: the running daemon's indexes by mode (.ctl/stats).
t4dx_modes() {
	jq -r '"graph=\(.indexes.graph // "") scan=\(.indexes.scan // "") scan_bytes=\(.indexes.scan_bytes // "")"' \
		"$MNT/.ctl/stats" 2>/dev/null || printf 'graph= scan= scan_bytes='
}

search_measure() {
	local set saved_data=$DATA saved_ok=$T4DX_OK emb
	if [[ -z $VECBENCH ]]; then
		note "search: run-bench.sh got no VECBENCH: the search part is not measured"
		return 0
	fi
	# a t4dx that failed an earlier part gets its chance here, on
	# stores of its own; the earlier parts' cells stay as they were
	T4DX_OK=1
	ROUND=0
	pin 0
	t4dx_stop

	search_part index && for set in uniform clustered; do
		progress "search: index of $SEARCH_N $set vectors, $SEARCH_Q queries"
		vec_rec "index-$set" index -n "$SEARCH_N" -S "$set" \
			-q "$SEARCH_Q" -k "$SEARCH_K" -T "$TMP"
	done

	if search_part queries || search_part nrem; then
	progress "search: a store of $SEARCH_N items with clustered vectors set by hand, and one without vectors"
	printf '{"vector":{"embedder":"off"}}\n' >"$TMP/search.json"
	rm -rf "$TMP/search-data" "$TMP/search-novec"
	vec_rec store store "$TMP/search-data" -n "$SEARCH_N" -S clustered \
		-c "$TMP/search.json" -q "$SEARCH_Q" -k "$SEARCH_K" \
		--ids "$TMP/search.ids"
	vec_rec store-novec store "$TMP/search-novec" -n "$SEARCH_N" \
		-S clustered -c "$TMP/search.json" -q "$SEARCH_Q" --novec

	DATA=$TMP/search-data
	if [[ -s $TMP/search.ids ]] && t4dx_start -o "config=$TMP/search.json"; then
		rec search-rss t4dx "kib=$(t4dx_hwm) phase=mount"
		search_part queries && {
		progress "search: ls of search/@ID?k=$SEARCH_K through the mount, $SEARCH_Q queries"
		# one client, one query at a time: pinned like the other
		# single-threaded workloads
		pin 1
		# the FUSE requests an ls costs, and how many segments (one
		# index search each) a query searches
		rec search-segs t4dx "segments=$(t4dx_stat segments)"
		opsnap t4dx "$TMP/search-ops.before"
		vec_rec query query "$MNT" --ids "$TMP/search.ids" \
			-k "$SEARCH_K" -m 600
		opsnap t4dx "$TMP/search-ops.after"
		opdiff t4dx query-reqs "$TMP/search-ops.before" \
			"$TMP/search-ops.after" \
			"$(field ops "$(awk '$1 == "key=query" { print; exit }' "$RAW")")"
		# the same with coreutils ls, a process each (what a user's
		# ls costs), and ls of an empty local directory: what the
		# process alone costs
		if [[ $(awk '$1 == "key=query" { print; exit }' "$RAW") == *available=1* ]]; then
			local id
			mkdir -p "$TMP/empty"
			ROUND=0
			while read -r id && ((ROUND < SEARCH_Q)); do
				ROUND=$((ROUND + 1))
				bench_rec query-ls t4dx run -- ls "$MNT/search/@$id?k=$SEARCH_K"
				bench_rec query-ls-empty local run -- ls "$TMP/empty"
			done <"$TMP/search.ids"
			ROUND=0
		fi
		pin 0
		rec search-rss t4dx "kib=$(t4dx_hwm) phase=queries"
		rec search-modes t4dx "$(t4dx_modes)"
		}
		progress "search: nrem compaction of the store with vectors"
		ctl_compact compact-vec
		rec search-rss t4dx "kib=$(t4dx_hwm) phase=compaction"
		t4dx_stop
	else
		rec query t4dx "failed=1 errors=1"
		rec compact-vec t4dx "failed=1 errors=1"
	fi
	search_part queries && search_uniform
	DATA=$TMP/search-novec
	if [[ -d $DATA ]] && t4dx_start -o "config=$TMP/search.json"; then
		progress "search: nrem compaction of the store without vectors"
		ctl_compact compact-novec
		t4dx_stop
	else
		rec compact-novec t4dx "failed=1 errors=1"
	fi
	fi  # queries or nrem

	search_part embedder && {
	progress "search: 16 writers, embedder builtin and off, $ROUNDS rounds"
	for emb in builtin off; do
		printf '{"vector":{"embedder":"%s"}}\n' "$emb" >"$TMP/emb-$emb.json"
	done
	for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
		for emb in $(order builtin off); do
			DATA=$TMP/emb-data
			{ rm -rf "$DATA" && mkdir "$DATA"; } || continue
			# the last round's writes on the disk first: a
			# builtin round's catch-up leaves 100 MiB and more
			# to write back, which would slow the next round
			sync
			if ! t4dx_start -o "config=$TMP/emb-$emb.json"; then
				rec "write16-$emb" t4dx "failed=1 errors=1"
				continue
			fi
			if mkdir "$MNT/items/w"; then
				bench_rec "write16-$emb" t4dx write "$MNT/items/w" \
					-t 16 -n "$W16" -p i
			else
				rec "write16-$emb" t4dx "failed=1 errors=1"
			fi
			# writes that never pause for the embedder's 1 s
			# hold-back: on a busy CPU the vectors wait for
			# them to stop (vector.defer_s), on an idle one the
			# embedder and each flush compute them meanwhile
			if mkdir "$MNT/items/s"; then
				bench_rec "write16s-$emb" t4dx write "$MNT/items/s" \
					-t 16 -n "$((W16 * 15))" -p i
			else
				rec "write16s-$emb" t4dx "failed=1 errors=1"
			fi
			# and the time the embedder takes, once they stop, to
			# be done with what it held back
			[[ $emb == builtin ]] && emb_catchup
			t4dx_stop
		done
	done
	rm -rf "$TMP/emb-data"
	}
	ROUND=0
	DATA=$saved_data
	T4DX_OK=$saved_ok
}

# emb_catchup: seconds until the embedder has nothing left to do
# (.ctl/stats vectors.busy false, 5 minutes at most), how many files it
# held back and how many the flushes left to it, as write16s-catchup.
emb_catchup() {
	local t0 t1 deferred left
	t0=$(now_us)
	until jq -e '.vectors.busy == false' "$MNT/.ctl/stats" >/dev/null 2>&1; do
		if (($(now_us) - t0 > 300000000)); then
			rec write16s-catchup t4dx "failed=1 errors=1"
			return
		fi
		sleep 0.1
	done
	t1=$(now_us)
	deferred=$(jq '.vectors.deferred' "$MNT/.ctl/stats" 2>/dev/null)
	left=$(jq '.vectors.flush_left' "$MNT/.ctl/stats" 2>/dev/null)
	rec write16s-catchup t4dx "seconds=$(awk -v a="$t0" -v b="$t1" \
		'BEGIN { printf "%.3f", (b - a) / 1e6 }') deferred=${deferred:-0} left=${left:-0}"
}

# ---- the table ---------------------------------------------------------------

SROW_FMT='%-44s %12s %12s %12s  %-16s %s\n'
srow() {
	# shellcheck disable=SC2059
	printf "$SROW_FMT" "$@"
}

# scell KEY FIELD SCALE DIGITS: the figure of the search part's run KEY
# (the median over rounds where there are rounds), FAILED if it failed.
scell() {
	if failed "$1" t4dx; then
		printf 'FAILED'
		return
	fi
	fmt "$(median "$1" t4dx "$2")" "$3" "$4"
}

# sval KEY FIELD: the raw median, empty if failed or missing.
sval() {
	failed "$1" t4dx && return
	median "$1" t4dx "$2"
}

# paired A B FIELD: the median over rounds of FIELD of A over FIELD of B
# in the same round (of the search part's t4dx), empty if no round has
# both or either failed.  A and B of a round run one after the other (in
# an order that alternates): their ratio leaves out how the machine
# drifts from round to round, which a ratio of the two medians does not.
paired() {
	failed "$1" t4dx && return
	failed "$2" t4dx && return
	awk -v ka="$1" -v kb="$2" -v f="$3" '
		$2 == "sys=t4dx" {
			k = ""; r = ""; v = ""
			for (i = 1; i <= NF; i++) {
				split($i, kv, "=")
				if (kv[1] == "key") k = kv[2]
				else if (kv[1] == "round") r = kv[2]
				else if (kv[1] == f) v = kv[2]
			}
			if (r == "" || v == "") next
			if (k == ka) a[r] = v + 0
			else if (k == kb) b[r] = v + 0
		}
		END {
			n = 0
			for (r in a)
				if ((r in b) && b[r] > 0)
					x[n++] = a[r] / b[r]
			if (!n) exit
			for (i = 1; i < n; i++)
				for (j = i; j > 0 && x[j - 1] > x[j]; j--) {
					t = x[j]; x[j] = x[j - 1]; x[j - 1] = t
				}
			printf "%.6g\n", n % 2 ? x[int(n / 2)] : (x[n / 2 - 1] + x[n / 2]) / 2
		}' "$RAW"
}

# spct KEY SYS FIELD P: the P-quantile of FIELD over the lines of KEY.
spct() {
	awk -v key="$1" -v sys="$2" -v f="$3" -v p="$4" '
		$1 == "key=" key && $2 == "sys=" sys {
			for (i = 4; i <= NF; i++)
				if (index($i, f "=") == 1)
					a[n++] = substr($i, length(f) + 2) + 0
		}
		END {
			if (!n) exit
			for (i = 1; i < n; i++)
				for (j = i; j > 0 && a[j - 1] > a[j]; j--) {
					t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
				}
			printf "%.6g\n", a[int(p * (n - 1) + 0.5)]
		}' "$RAW"
}

# search_rss PHASE: the daemon's VmHWM (KiB) kept at PHASE.
search_rss() {
	awk -v ph="phase=$1" '$1 == "key=search-rss" && $2 == "sys=t4dx" {
			for (i = 4; i <= NF; i++) {
				if ($i ~ /^kib=/) k = substr($i, 5)
				if ($i == ph) hit = 1
			}
			if (hit && k != "") { print k; exit }
			hit = 0; k = ""
		}' "$RAW"
}

# at_most V LIMIT / at_least V LIMIT: yes, NO, or "-" if V is unknown.
at_most() {
	[[ -n $1 ]] || { printf -- '-'; return; }
	awk -v v="$1" -v l="$2" 'BEGIN { print (v <= l ? "yes" : "NO") }'
}
at_least() {
	[[ -n $1 ]] || { printf -- '-'; return; }
	awk -v v="$1" -v l="$2" 'BEGIN { print (v >= l ? "yes" : "NO") }'
}

# idx_mode SET: the mode tune chose for the index of SET.
idx_mode() {
	field mode "$(awk -v k="key=index-$1" '$1 == k { print; exit }' "$RAW")"
}

# mount_rows SET QUERY_KEY STORE_KEY MODES_KEY: the rows of the listing
# through the mount of SET, next to the engine in-process and the index;
# sets avail (0: no search/ directory).
mount_rows() {
	local set=$1 qk=$2 sk=$3 mk=$4 l q50 q99 i50 i99 e50 e99 self=self
	# the index column: the mode tune chose for it
	[[ $(idx_mode "$set") == scan ]] && self=scan_self
	echo
	srow "through the mount ($set, hand vectors)" mount engine "index $(idx_mode "$set")" "target" met
	srow "-------------------------------------------" ----- ------ ----- ------ ---
	l=$(awk -v k="key=$qk" '$1 == k { print; exit }' "$RAW")
	avail=$(field available "$l")
	i50=$(sval "index-$set" ${self}_p50_us)
	i99=$(sval "index-$set" ${self}_p99_us)
	e50=$(sval "$sk" search_p50_us)
	e99=$(sval "$sk" search_p99_us)
	if [[ $avail == 0 ]]; then
		srow "ls search/@ID?k=$SEARCH_K p50 [ms]" "not available" "$(scell "$sk" search_p50_us 0.001 2)" "$(scell "index-$set" ${self}_p50_us 0.001 2)" "<=2 ms" "-"
		srow "  p99 [ms]" "not available" "$(scell "$sk" search_p99_us 0.001 2)" "$(scell "index-$set" ${self}_p99_us 0.001 2)" "<=10 ms" "-"
		echo "  (this t4dxfs has no search/ directory: the mount figures are not measured)"
		return
	fi
	q50=$(sval "$qk" p50_us)
	q99=$(sval "$qk" p99_us)
	srow "ls search/@ID?k=$SEARCH_K p50 [ms]" "$(scell "$qk" p50_us 0.001 2)" \
		"$(scell "$sk" search_p50_us 0.001 2)" "$(scell "index-$set" ${self}_p50_us 0.001 2)" "<=2 ms" \
		"$(at_most "$q50" 2000)"
	srow "  p99 [ms]" "$(scell "$qk" p99_us 0.001 2)" \
		"$(scell "$sk" search_p99_us 0.001 2)" "$(scell "index-$set" ${self}_p99_us 0.001 2)" "<=10 ms" \
		"$(at_most "$q99" 10000)"
	srow "  mount / index, mount / engine (p50)" "$(ratio "$q50" "$i50")" "$(ratio "$q50" "$e50")" "" "" ""
	srow "  mount / index, mount / engine (p99)" "$(ratio "$q99" "$i99")" "$(ratio "$q99" "$e99")" "" "" ""
	srow "  results a query (of $SEARCH_K)" "$(scell "$qk" results 1 1)" "$(scell "$sk" search_results 1 1)" "" "" ""
	srow "  engine recall against its exact search" "" "$(scell "$sk" search_recall 1 4)" "" ">=0.95" \
		"$(at_least "$(sval "$sk" search_recall)" 0.95)"
	l=$(awk -v k="key=$mk" '$1 == k { print; exit }' "$RAW")
	[[ -n $l ]] && echo "  indexes in the daemon after the queries: graph $(field graph "$l"), scan $(field scan "$l") ($(fmt "$(field scan_bytes "$l")" 0.00000095367431640625 1) MiB of codes)"
}

search_table() {
	local l p rss avail on off cv cn
	[[ -n $VECBENCH ]] || return 0
	echo
	l=$(awk '$1 == "key=index-clustered" || $1 == "key=index-uniform" { print; exit }' "$RAW")
	p="M $(field m "$l"), ef_construction $(field ef_construction "$l"), ef_search $(field ef_search "$l")"
	if [[ -z $(field m "$l") ]]; then
		p="parameters unknown (the index runs failed)"
	elif [[ $(field params "$l") == default ]]; then
		p="$p (core has no vector.index_m / ef_* keys: the values core used when this was written)"
	else
		p="$p (from the configuration's defaults)"
	fi
	echo "search: $SEARCH_N vectors of dim 256, $SEARCH_Q queries, k $SEARCH_K; index $p"
	if ((PIN)); then
		echo "t4dx: $T4DXFS, stores on $EXT_FS; mount queries: client and daemon pinned to CPU $PIN_CPU; the rest unpinned"
	else
		echo "t4dx: $T4DXFS, stores on $EXT_FS; nothing pinned (BENCH_PIN=0)"
	fi
	echo
	srow "in-process (hnswlib through core/index.h)" uniform clustered "" target met
	srow "-----------------------------------------" ------- --------- "" ------ ---
	srow "index build, 10,000 items (a flush's) [s]" "$(scell index-uniform build10k_s 1 3)" \
		"$(scell index-clustered build10k_s 1 3)" "" "" ""
	srow "index build of $SEARCH_N, per 10,000 [s]" "$(scell index-uniform build_per_10k_s 1 3)" \
		"$(scell index-clustered build_per_10k_s 1 3)" "" "" ""
	srow "graph recall@10 at ef_search" "$(scell index-uniform recall10 1 4)" \
		"$(scell index-clustered recall10 1 4)" "" "" ""
	srow "  at 2x / 4x ef_search" \
		"$(scell index-uniform recall10_ef2x 1 3)/$(scell index-uniform recall10_ef4x 1 3)" \
		"$(scell index-clustered recall10_ef2x 1 3)/$(scell index-clustered recall10_ef4x 1 3)" "" "" ""
	srow "index query p50 / p99 [us]" \
		"$(scell index-uniform q_p50_us 1 0)/$(scell index-uniform q_p99_us 1 0)" \
		"$(scell index-clustered q_p50_us 1 0)/$(scell index-clustered q_p99_us 1 0)" "" "" ""
	srow "exact search p50 / p99 [us]" \
		"$(scell index-uniform exact_p50_us 1 0)/$(scell index-uniform exact_p99_us 1 0)" \
		"$(scell index-clustered exact_p50_us 1 0)/$(scell index-clustered exact_p99_us 1 0)" "" "" ""
	srow "index in memory / as a file [MiB]" \
		"$(scell index-uniform index_bytes 0.00000095367431640625 1)/$(scell index-uniform file_bytes 0.00000095367431640625 1)" \
		"$(scell index-clustered index_bytes 0.00000095367431640625 1)/$(scell index-clustered file_bytes 0.00000095367431640625 1)" "" "" ""
	srow "peak RSS, data vectors included [MiB]" \
		"$(scell index-uniform rss_kib 0.0009765625 1)" \
		"$(scell index-clustered rss_kib 0.0009765625 1)" "" "" ""
	srow "tune (vector.min_recall): time [s]" "$(scell index-uniform tune_s 1 3)" \
		"$(scell index-clustered tune_s 1 3)" "" "" ""
	srow "  measured recall, mode chosen" \
		"$(scell index-uniform tuned_recall 1 3) $(idx_mode uniform)" \
		"$(scell index-clustered tuned_recall 1 3) $(idx_mode clustered)" "" "" ""
	srow "scan mode: recall@10" "$(scell index-uniform scan_recall10 1 4)" \
		"$(scell index-clustered scan_recall10 1 4)" "" "" ""
	srow "  query p50 / p99 [us]" \
		"$(scell index-uniform scan_p50_us 1 0)/$(scell index-uniform scan_p99_us 1 0)" \
		"$(scell index-clustered scan_p50_us 1 0)/$(scell index-clustered scan_p99_us 1 0)" "" "" ""
	srow "  its codes [MiB]" \
		"$(scell index-uniform code_bytes 0.00000095367431640625 1)" \
		"$(scell index-clustered code_bytes 0.00000095367431640625 1)" "" "" ""
	echo "  (uniformly random unit vectors at dim 256 are the worst case of any graph index: a"
	echo "  segment whose graph measures below vector.min_recall is searched by its scan instead)"

	mount_rows clustered query store search-modes
	if [[ $avail == 1 ]]; then
		l=$(awk '$1 == "key=query-reqs" { print; exit }' "$RAW")
		if [[ -n $l ]]; then
			echo "  FUSE requests an ls:$(field reqs "$l" | sed 's/^1//; s/,/ /g');" \
				"segments searched: $(field segments "$(awk '$1 == "key=search-segs" { print; exit }' "$RAW")")"
		fi
		if ! failed query-ls t4dx && [[ -n $(median query-ls t4dx seconds) ]]; then
			srow "coreutils ls, a process each, p50/p99 [ms]" \
				"$(fmt "$(spct query-ls t4dx seconds 0.5)" 1000 2)/$(fmt "$(spct query-ls t4dx seconds 0.99)" 1000 2)" \
				"" "" "" ""
			srow "  ls of an empty local directory [ms]" \
				"$(fmt "$(spct query-ls-empty local seconds 0.5)" 1000 2)/$(fmt "$(spct query-ls-empty local seconds 0.99)" 1000 2)" \
				"" "" "" ""
		elif failed query-ls t4dx; then
			srow "coreutils ls, a process each, p50/p99 [ms]" FAILED "" "" "" ""
		fi
	fi
	mount_rows uniform query-uniform store-uniform search-modes-uniform
	srow "daemon VmHWM after the queries [MiB]" "$(fmt "$(awk '$1 == "key=search-rss-uniform" { print; exit }' "$RAW" | tr ' ' '\n' | sed -n 's/^kib=//p')" 0.0009765625 1)" \
		"" "" "<256 MiB" \
		"$(at_most "$(awk '$1 == "key=search-rss-uniform" { print; exit }' "$RAW" | tr ' ' '\n' | sed -n 's/^kib=//p')" $((256 * 1024 - 1)))"
	echo
	echo "clustered store, nrem:"
	# the issue's peak: VmHWM only grows, and nrem (the inputs' indexes
	# and the one it builds) is the heaviest moment, if it ran
	rss=$(search_rss compaction)
	[[ -n $rss ]] || rss=$(search_rss queries)
	srow "daemon VmHWM: mount, queries, nrem [MiB]" "$(fmt "$(search_rss mount)" 0.0009765625 1)" \
		"$(fmt "$(search_rss queries)" 0.0009765625 1)" "$(fmt "$(search_rss compaction)" 0.0009765625 1)" \
		"<256 MiB peak" "$(at_most "$rss" $((256 * 1024 - 1)))"
	cv=$(sval compact-vec seconds)
	cn=$(sval compact-novec seconds)
	srow "nrem compaction, with / without vectors [s]" \
		"$(scell compact-vec seconds 1 2)" "$(scell compact-novec seconds 1 2)" \
		"$(ratio "$cv" "$cn")" "" ""
	srow "store: put, close (flush), open [s]" \
		"$(scell store put_s 1 2)" "$(scell store close_s 1 2)" "$(scell store open_s 1 2)" "" ""
	echo "  (mount: one process lists the query directory as ls does; engine: t4dx_search"
	echo "  in-process on the same store; index: the same queries on one index of the vectors)"

	echo
	on=$(sval write16-builtin ops_per_s)
	off=$(sval write16-off ops_per_s)
	srow "16 writers, durable 1 KiB [items/s]" builtin off ratio target met
	srow "  medians of $ROUNDS rounds" "$(scell write16-builtin ops_per_s 1 0)" \
		"$(scell write16-off ops_per_s 1 0)" "$(ratio "$on" "$off")" "" ""
	p=$(paired write16-builtin write16-off ops_per_s)
	srow "  median of the rounds' ratios" "" "" "$(ratio "$p" 1)" ">=0.95x" \
		"$(verdict "$p" 1 '>=' 0.95)"
	srow "  latency p50 / p99 [us]" \
		"$(scell write16-builtin p50_us 1 0)/$(scell write16-builtin p99_us 1 0)" \
		"$(scell write16-off p50_us 1 0)/$(scell write16-off p99_us 1 0)" "" "" ""
	on=$(sval write16s-builtin ops_per_s)
	off=$(sval write16s-off ops_per_s)
	srow "  never pausing, $((W16 * 15)) each" "$(scell write16s-builtin ops_per_s 1 0)" \
		"$(scell write16s-off ops_per_s 1 0)" "$(ratio "$on" "$off")" "" ""
	p=$(paired write16s-builtin write16s-off ops_per_s)
	srow "  median of the rounds' ratios" "" "" "$(ratio "$p" 1)" ">=0.95x" \
		"$(verdict "$p" 1 '>=' 0.95)"
	srow "  then, vectors all done after [s]" "$(scell write16s-catchup seconds 1 1)" \
		"" "" "" ""
	srow "  files left by flushes / held back" \
		"$(scell write16s-catchup left 1 0)/$(scell write16s-catchup deferred 1 0)" \
		"" "" "" ""
	echo "  (the first rows: bursts shorter than the embedder's 1 s hold-back, which embeds"
	echo "  once writes pause; never pausing, the writers keep the CPU busy and vectors wait"
	echo "  for them to stop, vector.defer_s at most: the last rows, the embedder's catch-up;"
	echo "  the target is judged on each round's builtin/off ratio, the two run back to back:"
	echo "  the machine's drift from round to round moves the medians of each column apart)"
}
