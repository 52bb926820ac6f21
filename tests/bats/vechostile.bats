#!/usr/bin/env bats
# vechostile.bats - a hostile new user's changes of the embedder on a store
# that has vectors (issue 13): what an interrupted re-embedding leaves, and
# the command embedder as such a user writes one.

load ../lib/mount

setup() {
	t4dx_setup
}

# cfg_builtin: builtin embedder, vector.dim 8.
cfg_builtin() {
	t4dx_config_file '{"vector":{"dim":8,"embedder":"builtin"}}'
}

# cfg_slow: tests/embed-cmd.sh slow 0.05 8 (each answer [1, length, 0...]).
cfg_slow() {
	t4dx_config_file "$(jq -cn --arg sh "$T4DX_SRCDIR/tests/embed-cmd.sh" \
		'{vector: {dim: 8, embedder: "command", timeout_s: 10,
			command: ["bash", $sh, "slow", "0.05", "8"]}}')"
}

# a vector of embed-cmd.sh's (never the builtin embedder's: it is scaled
# to length 1, and these hold the text's length)
is_program_vec() {
	[[ $1 =~ ^\[1,[0-9]+,0,0,0,0,0,0\]$ ]]
}

@test "embedder switch: a re-embedding cut by SIGKILL, then the old embedder again, leaves no vector of the other" {
	CFG=$(cfg_builtin)
	t4dx_start -o "config=$CFG"
	for i in $(seq 60); do
		printf 'note %s about the lake and the hill\n' "$i" >"$ITEMS/n$i"
	done
	t4dx_wait_ctl 30 stats '.vectors.busy == false and .vectors.embedded == 60'
	t4dx_stop

	# try a program: it re-embeds every file, slowly; cut it short
	CFG2=$(cfg_slow)
	t4dx_start -o "config=$CFG2"
	t4dx_wait_ctl 30 stats '.vectors.embedded >= 5' ||
		fail "the program embedded nothing"
	t4dx_kill9

	# back to the builtin embedder: every vector must be the builtin's
	t4dx_start -o "config=$CFG"
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	local f v bad=()
	for f in "$ITEMS"/n*; do
		v=$(t4dx_xattr vector "$f")
		is_program_vec "$v" && bad+=("${f##*/}=$v")
	done
	((${#bad[@]} == 0)) ||
		fail "${#bad[@]} files keep the program's vectors: ${bad[*]:0:5}"
}

@test "embedder switch: a re-embedding cut by an unmount, then the old embedder again, leaves no vector of the other" {
	CFG=$(cfg_builtin)
	t4dx_start -o "config=$CFG"
	for i in $(seq 60); do
		printf 'note %s about the lake and the hill\n' "$i" >"$ITEMS/n$i"
	done
	t4dx_wait_ctl 30 stats '.vectors.busy == false and .vectors.embedded == 60'
	t4dx_stop

	CFG2=$(cfg_slow)
	t4dx_start -o "config=$CFG2"
	t4dx_wait_ctl 30 stats '.vectors.embedded >= 5' ||
		fail "the program embedded nothing"
	t4dx_stop

	t4dx_start -o "config=$CFG"
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	local f v bad=()
	for f in "$ITEMS"/n*; do
		v=$(t4dx_xattr vector "$f")
		is_program_vec "$v" && bad+=("${f##*/}=$v")
	done
	((${#bad[@]} == 0)) ||
		fail "${#bad[@]} files keep the program's vectors: ${bad[*]:0:5}"
}
