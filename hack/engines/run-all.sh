#!/usr/bin/env bash
# Run the Docker, Podman, containerd and Kubernetes CRI smoke tests.
#
#   hack/engines/run-all.sh [--compare] [--engines "docker podman containerd cri"] RUNTIME
#
# Without --compare: each engine's script with RUNTIME; fails when any check fails.
# With --compare: each engine first with Debian's runc (/usr/sbin/runc, or $SMOKE_REFERENCE),
# then with RUNTIME; prints the counts side by side and fails only on checks that fail with
# RUNTIME but pass with the reference (a check runc fails too is this machine's, not RUNTIME's).
# Every script's full output lands in $SMOKE_OUT (default: a temp dir, kept and printed only
# when something failed).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
compare=
engines="docker podman containerd cri"
while [[ $# -gt 1 ]]; do
	case $1 in
	--compare) compare=1 ;;
	--engines) engines=$2; shift ;;
	*) break ;;
	esac
	shift
done
if [[ $# -ne 1 ]]; then
	echo "usage: $0 [--compare] [--engines \"docker podman containerd cri\"] RUNTIME_PATH" >&2
	exit 2
fi
runtime=$(readlink -f "$1")
reference=${SMOKE_REFERENCE:-/usr/sbin/runc}
# Debian's runc is the reference: on a fresh machine it is not there until installed (the
# engines would pull it in as a dependency, but only after the first reference run started).
if [[ -n $compare && $reference == /usr/sbin/runc && ! -x $reference ]]; then
	echo "installing runc (the reference runtime)" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends runc >/dev/null 2>&1 ||
		{ apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends runc >/dev/null; }
fi
out=${SMOKE_OUT:-$(mktemp -d /tmp/skiff-engines.XXXXXX)}
mkdir -p "$out"

# run ENGINE RUNTIME LABEL: run one script, keep its output, print it as it goes.
run() {
	local engine=$1 rt=$2 label=$3
	"$here/$engine.sh" "$rt" 2>&1 | tee "$out/$engine.$label.log"
	return "${PIPESTATUS[0]}"
}

# results FILE: "NAME STATUS" lines.
results() { awk '$1 ~ /^(PASS|FAIL|SKIP)$/ { print $2, $1 }' "$1" | sort; }
counts() { awk '$1 == "PASS" { p++ } $1 == "FAIL" { f++ } $1 == "SKIP" { s++ } END { printf "%d passed, %d failed, %d skipped", p, f, s }' "$1"; }

status=0
table=()
regressions=()
for engine in $engines; do
	if [[ -n $compare ]]; then
		run "$engine" "$reference" ref
		echo
	fi
	run "$engine" "$runtime" test || status=1
	echo
	if [[ -n $compare ]]; then
		if ! grep -q '^PASS' "$out/$engine.ref.log"; then
			regressions+=("$engine/* (nothing passed with the reference: broken setup?)")
		fi
		table+=("$(printf '%-11s %-40s %s' "$engine" "$(counts "$out/$engine.test.log")" "$(counts "$out/$engine.ref.log")")")
		# A check that fails (or is missing: setup died) with the runtime but passes with the reference.
		while read -r name st; do
			got=$(results "$out/$engine.test.log" | awk -v n="$name" '$1 == n { print $2 }')
			[[ $st == PASS && $got != PASS ]] && regressions+=("$engine/$name (${got:-not run})")
		done < <(results "$out/$engine.ref.log")
	fi
done

if [[ -n $compare ]]; then
	echo "== side by side"
	printf '%-11s %-40s %s\n' engine "$(basename "$runtime")" "$(basename "$reference")"
	printf '%s\n' "${table[@]}"
	if ((${#regressions[@]})); then
		echo "fail with $(basename "$runtime") only: ${regressions[*]}"
		status=1
	else
		echo "every check that passes with $(basename "$reference") passes with $(basename "$runtime")"
		status=0
	fi
fi
if [[ $status -eq 0 && -z ${SMOKE_OUT:-} ]]; then
	rm -rf "$out"
else
	echo "logs: $out"
fi
exit $status
