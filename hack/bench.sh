#!/usr/bin/env bash
# Side-by-side startup benchmark of skiff, runc and crun on the same bundle (hyperfine).
#
#   hack/bench.sh [--build] [--runs N] [--runtimes "skiff runc crun"]
#
# Environment: RUNTIMES (default "skiff runc crun"), RUNS (default 50), SKIFF (skiff binary,
# default: the static release build, target/<arch>-unknown-linux-musl/release/skiff; --build
# builds it first, see build_release_skiff in hack/lib.sh).
#
# Benchmarks (run and cycle use a fresh container id in every iteration):
#   run   : `<rt> run --bundle B ID` of /bin/true
#   cycle : `<rt> create --bundle B ID`, `<rt> start ID`, `<rt> delete --force ID` (three processes)
#   exec  : `<rt> exec ID /bin/true` into one long-running container (sleep) per runtime
# Same config (made by `skiff spec`, else `runc spec`), same busybox rootfs, terminal false,
# each runtime with its own --root.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=hack/lib.sh
source hack/lib.sh

runtimes="${RUNTIMES:-skiff runc crun}"
runs="${RUNS:-50}"
build=""
image=""
while (($#)); do
	case $1 in
	--build) build=1 ;;
	--image) image=1 ;;
	--runs) runs=$2; shift ;;
	--runs=*) runs=${1#*=} ;;
	--runtimes) runtimes=$2; shift ;;
	--runtimes=*) runtimes=${1#*=} ;;
	-h | --help) sed -n '2,15p' "$0"; exit 0 ;;
	*) echo "unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

need_root
apt_install busybox-static hyperfine runc crun time
command -v python3 >/dev/null 2>&1 || apt_install python3-minimal

skiff="${SKIFF:-$repo/target/$(uname -m)-unknown-linux-musl/release/skiff}"
if [[ -n $build ]]; then
	build_release_skiff
	skiff=${SKIFF:-$skiff_release}
fi

declare -A bin
selected=()
for rt in $runtimes; do
	case $rt in
	skiff) b=$skiff ;;
	runc) b=$(command -v runc || echo /usr/sbin/runc) ;;
	crun) b=$(command -v crun || echo /usr/bin/crun) ;;
	*) b=$rt; rt=$(basename "$rt") ;;
	esac
	if [[ ! -x $b ]]; then
		if [[ $rt == skiff ]]; then
			echo "bench: skiff binary $b does not exist yet (run with --build, or set SKIFF=); skipping skiff" >&2
		else
			echo "bench: $rt not found at $b; skipping" >&2
		fi
		continue
	fi
	bin[$rt]=$b
	selected+=("$rt")
done
((${#selected[@]})) || { echo "bench: no runtime to benchmark" >&2; exit 1; }

if [[ -n ${bin[crun]:-} ]]; then
	mount_hugetlb_v1_for_crun
fi

./hack/mkrootfs.sh
work="$(mktemp -d /tmp/skiff-bench.XXXXXX)"
chmod 755 "$work"
cleanup() {
	for rt in "${selected[@]}"; do
		for id in $("${bin[$rt]}" --root "$work/root-$rt" list -q 2>/dev/null); do
			"${bin[$rt]}" --root "$work/root-$rt" delete --force "$id" >/dev/null 2>&1 || true
		done
	done
	rm -rf "$work"
}
trap cleanup EXIT

bundle="$work/bundle"
if [[ -n ${bin[skiff]:-} ]]; then spec_from=${bin[skiff]}; else spec_from=$(command -v runc); fi
make_true_bundle "$bundle" "$spec_from"
# The exec target: the same rootfs (by absolute path: runc refuses a symlinked one), init sleeps.
exec_bundle="$work/bundle-exec"
mkdir -p "$exec_bundle"
python3 - "$bundle/config.json" "$exec_bundle/config.json" "$bundle/rootfs" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["args"] = ["sleep", "1000000"]
c["root"]["path"] = sys.argv[3]
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
echo "bench: bundle $bundle (config from $(basename "$spec_from") spec), runtimes: ${selected[*]}, $runs runs each"

# hyperfine subtracts the bash startup; $SRANDOM is a builtin, so unique ids cost no extra process.
run_cmds=() cycle_cmds=() exec_cmds=() names=()
for rt in "${selected[@]}"; do
	b=${bin[$rt]} r="$work/root-$rt"
	names+=("$rt")
	run_cmds+=("$b --root $r run --bundle $bundle b\$SRANDOM\$SRANDOM")
	cycle_cmds+=("id=b\$SRANDOM\$SRANDOM; $b --root $r create --bundle $bundle \$id && $b --root $r start \$id && $b --root $r delete --force \$id")
	exec_cmds+=("$b --root $r exec exec-target /bin/true")
done

hf() { # hf NAME CMDS...   (HF_SHELL=none for commands without shell syntax)
	local name=$1; shift
	local args=() i=0
	for c in "$@"; do
		args+=(-n "${names[$i]}" "$c")
		i=$((i + 1))
	done
	hyperfine --shell="${HF_SHELL:-bash}" --warmup 5 --runs "$runs" --export-json "$work/$name.json" "${args[@]}"
}
hf run "${run_cmds[@]}"
hf cycle "${cycle_cmds[@]}"

for rt in "${selected[@]}"; do
	"${bin[$rt]}" --root "$work/root-$rt" run -d --bundle "$exec_bundle" exec-target </dev/null >/dev/null
done
# exec takes a few ms: measured without a shell, whose startup hyperfine cannot subtract that finely.
HF_SHELL=none hf exec "${exec_cmds[@]}"
for rt in "${selected[@]}"; do
	# runc 1.1 may complain that a cgroup is still busy right after the kill; cleanup retries.
	"${bin[$rt]}" --root "$work/root-$rt" delete --force exec-target >/dev/null 2>&1 || true
done

# 100 containers, 10 at a time (run of /bin/true), total wall time.
many_cmds=()
for rt in "${selected[@]}"; do
	b=${bin[$rt]} r="$work/root-$rt"
	many_cmds+=("seq 100 | xargs -P 10 -I{} $b --root $r run --bundle $bundle m{}-\$SRANDOM")
done
hyperfine_many() {
	local args=() i=0
	for c in "${many_cmds[@]}"; do
		args+=(-n "${names[$i]}" "$c")
		i=$((i + 1))
	done
	hyperfine --shell=bash --warmup 1 --runs "${MANY_RUNS:-5}" --export-json "$work/many.json" "${args[@]}"
}
hyperfine_many

# Peak RSS of the runtime process during create (GNU time's %M, KiB), median of 5.
: >"$work/rss.txt"
for rt in "${selected[@]}"; do
	b=${bin[$rt]} r="$work/root-$rt"
	for i in 1 2 3 4 5; do
		/usr/bin/time -f "$rt %M" -a -o "$work/rss.txt" "$b" --root "$r" create --bundle "$bundle" rss$i </dev/null >/dev/null
		"$b" --root "$r" delete --force rss$i >/dev/null 2>&1 || true
	done
done
# Binary sizes (as installed; skiff's release profile is stripped).
: >"$work/size.txt"
for rt in "${selected[@]}"; do
	echo "$rt $(stat -L -c %s "${bin[$rt]}")" >>"$work/size.txt"
done

python3 - "$work/run.json" "$work/cycle.json" "$work/exec.json" "$work/many.json" "$work/rss.txt" "$work/size.txt" <<'PY'
import json, statistics, sys
benches = [("run", sys.argv[1]), ("create+start+delete", sys.argv[2]), ("exec", sys.argv[3]),
           ("100 x run, 10 at a time", sys.argv[4])]
data = {b: {r["command"]: r for r in json.load(open(p))["results"]} for b, p in benches}
med = {b: {n: r["median"] * 1000 for n, r in d.items()} for b, d in data.items()}
cpu = {n: (r["user"] + r["system"]) * 1000 for n, r in data["run"].items()}
rss = {}
for line in open(sys.argv[5]):
    n, v = line.split()
    rss.setdefault(n, []).append(int(v))
size = dict((l.split()[0], int(l.split()[1])) for l in open(sys.argv[6]))
names = list(med["run"].keys())
refs = [r for r in ("crun", "runc") if r in names]
print()
print("Medians in ms; ratio = this runtime's value / the reference's (below 1 is better).")
def table(title, values, unit, fmt="{:>12.2f}"):
    print(f"\n{title} ({unit})")
    print(f"{'runtime':<10}{'value':>12}" + "".join(f"{'/' + r:>8}" for r in refs))
    for n in names:
        v = values[n]
        print(f"{n:<10}" + fmt.format(v) + "".join(f"{v / values[r]:>8.2f}" for r in refs))
for b, _ in benches:
    table(b + ", median wall", med[b], "ms")
table("run, CPU time user+sys (mean)", cpu, "ms")
table("create, peak RSS of the runtime (median of 5)", {n: statistics.median(v) for n, v in rss.items()}, "KiB", "{:>12.0f}")
table("binary size", {n: size[n] / 1e6 for n in names}, "MB")
PY

if [[ -n $image ]]; then
	"$repo/hack/bench-image.sh"
fi
