#!/usr/bin/env bash
# tests/deps.sh - every system header the sources include comes from a
# Debian package that a fresh machine gets from the quick start.
#
# For each `#include <...>` in core/, fs/, tools/ and tests/, find the file
# the compiler would use (its search path, plus the -I flags pkg-config gives
# for the libraries), ask dpkg which package owns it, and fail unless that
# package is
#   - on a minimal Debian 12: Essential, or of priority required; or
#   - build-essential, a package of contrib/packages.txt (what quickstart.sh
#     installs), or a dependency of one of them, however indirect.
#
# A header that is not found at all also fails (the build would, on a
# machine like this one).  Last, the check runs once more with the package
# of uthash.h left out of the list and must fail: a checker that cannot
# fail proves nothing.
#
# usage: bash tests/deps.sh [SRCDIR]      exit 0 fine, 1 problems, 77 skip
set -uo pipefail

srcdir=${1:-${T4DX_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}}
cd "$srcdir" || exit 2

if ! command -v dpkg-query >/dev/null || ! command -v dpkg >/dev/null; then
	echo "SKIP: not a Debian system (no dpkg)"
	exit 77
fi

CC=${CC:-cc}
CXX=${CXX:-c++}

# The quick start's packages, one a line.
quick_packages() {
	sed -e 's/#.*//' -e '/^[[:space:]]*$/d' -e 's/[[:space:]]//g' \
		contrib/packages.txt
}

# Every <header> included by a source file, one a line, with the files
# that include it: "header<TAB>file".
included_headers() {
	grep -rHoE --include='*.c' --include='*.h' --include='*.cc' \
		--include='*.cpp' '^[[:space:]]*#[[:space:]]*include[[:space:]]*<[^>]+>' \
		core fs tools tests |
		sed -E 's/^([^:]+):.*<([^>]+)>.*/\2\t\1/' | sort -u
}

# The directories the compilers search for <...>, then pkg-config's.
include_dirs() {
	local lang cc
	for lang in c c++; do
		cc=$CC
		[[ $lang == c++ ]] && cc=$CXX
		command -v "$cc" >/dev/null || continue
		"$cc" -x "$lang" -E -v - </dev/null 2>&1 >/dev/null |
			sed -n '/^#include <...> search starts here:/,/^End of search list/p' |
			sed -e '1d' -e '$d' -e 's/^ *//'
	done
	local m
	for m in fuse3 json-c liblz4 zlib sqlite3; do
		pkg-config --cflags-only-I "$m" 2>/dev/null | tr ' ' '\n' |
			sed -n 's/^-I//p'
	done
}

# Every installed package's dependencies, read once: dep[pkg] is the
# Depends and Pre-Depends field, alternatives kept as "a|b".
declare -A dep=()
load_deps() {
	local p st d
	# shellcheck disable=SC2016  # dpkg-query's ${...}, not ours
	while IFS=$'\t' read -r p st d; do
		[[ $st == installed ]] && dep[$p]=$d
	done < <(dpkg-query -W -f='${Package}\t${db:Status-Status}\t${Depends},${Pre-Depends}\n' |
		sed -E -e 's/\([^)]*\)//g' -e 's/:[a-z0-9]+//g' -e 's/ //g')
}

# Packages in the dependency closure of the names on stdin (for an
# alternative "a|b", whichever is installed), one a line.
closure() {
	local -A seen=()
	local queue=() p alt a
	while read -r p; do queue+=("$p"); done
	while ((${#queue[@]})); do
		p=${queue[-1]}
		unset 'queue[-1]'
		[[ -n $p && -z ${seen[$p]:-} && -n ${dep[$p]+x} ]] || continue
		seen[$p]=1
		local IFS=,
		for alt in ${dep[$p]}; do
			IFS='|'
			for a in $alt; do
				if [[ -n ${dep[$a]+x} ]]; then
					queue+=("$a")
					break
				fi
			done
			IFS=,
		done
		unset IFS
	done
	printf '%s\n' "${!seen[@]}"
}

# Installed packages that every Debian system has.
base_packages() {
	# shellcheck disable=SC2016
	dpkg-query -W -f='${Package} ${Essential} ${Priority}\n' |
		awk '$2 == "yes" || $3 == "required" { print $1 }'
}

# check PACKAGE...: print a line per header whose package is not allowed;
# return 1 if there is one.
check() {
	local -A allowed=()
	local p
	while read -r p; do allowed[$p]=1; done < <(
		{ printf '%s\n' build-essential "$@" | closure; base_packages; } | sort -u)

	local rc=0 h f d path owner
	for h in "${!header_files[@]}"; do
		path=${header_path[$h]:-}
		if [[ -z $path ]]; then
			echo "FAIL: <$h> (included by ${header_files[$h]}) is not installed"
			rc=1
			continue
		fi
		owner=${header_owner[$h]:-}
		if [[ -z $owner ]]; then
			echo "FAIL: <$h> is $path, which no Debian package owns"
			rc=1
		elif [[ -z ${allowed[$owner]:-} ]]; then
			echo "FAIL: <$h> (included by ${header_files[$h]}) comes from $owner, which contrib/packages.txt does not install"
			rc=1
		fi
	done
	return $rc
}

load_deps
mapfile -t dirs < <(include_dirs | awk '!seen[$0]++')
if ((${#dirs[@]} == 0)); then
	echo "FAIL: could not read the compiler's include path"
	exit 1
fi

declare -A header_files=() header_path=() header_owner=()
while IFS=$'\t' read -r h f; do
	header_files[$h]="${header_files[$h]:+${header_files[$h]} }$f"
done < <(included_headers)
# headers of the project itself (a <...> include of a file in the tree)
for h in "${!header_files[@]}"; do
	for d in core fs tools tests/unit; do
		[[ -e $d/$h ]] && unset "header_files[$h]" && break
	done
done

for h in "${!header_files[@]}"; do
	for d in "${dirs[@]}"; do
		if [[ -e $d/$h ]]; then
			header_path[$h]=$(realpath -- "$d/$h")
			break
		fi
	done
done

# One dpkg -S for all paths; its lines are "pkg[:arch][, pkg...]: path".
declare -A owner_of=()
if ((${#header_path[@]})); then
	while IFS= read -r line; do
		owner_of[${line#*: }]=${line%%: *}
	done < <(dpkg -S "${header_path[@]}" 2>/dev/null)
fi
for h in "${!header_path[@]}"; do
	o=${owner_of[${header_path[$h]}]:-}
	o=${o%%,*}
	header_owner[$h]=${o%%:*}
done

echo "# ${#header_files[@]} system headers from $(printf '%s\n' "${header_owner[@]}" | sort -u | wc -l) packages"
mapfile -t pkgs < <(quick_packages)
status=0
check "${pkgs[@]}" || status=1
if ((status == 0)); then
	echo "ok: every system header comes from an installed-by-quickstart or base package"
fi

# README names every package of the list.
for p in "${pkgs[@]}"; do
	if ! grep -qE "^    $p( |\$)" README; then
		echo "FAIL: README \"Building by hand\" does not list $p"
		status=1
	fi
done

# The checker itself: without uthash-dev in the list it must complain.
if [[ -n ${header_owner[uthash.h]:-} ]]; then
	mapfile -t fewer < <(printf '%s\n' "${pkgs[@]}" | grep -vxF -- "${header_owner[uthash.h]}")
	if out=$(check "${fewer[@]}"); then
		echo "FAIL: with ${header_owner[uthash.h]} left out of the list the check still passed"
		status=1
	elif [[ $out != *"<uthash.h>"* ]]; then
		echo "FAIL: with ${header_owner[uthash.h]} left out, the check did not name uthash.h: $out"
		status=1
	else
		echo "ok: the check fails without ${header_owner[uthash.h]} (${out%%$'\n'*})"
	fi
fi
exit $status
