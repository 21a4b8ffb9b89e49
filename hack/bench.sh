#!/usr/bin/env bash
# Side-by-side startup benchmark of skiff, runc and crun on the same bundle, alternating runs.
#
#   hack/bench.sh [--build] [--runs N] [--runtimes "skiff runc crun"] [--image]
#
# Environment: RUNTIMES (default "skiff runc crun"), RUNS (default 100), SKIFF (skiff binary,
# default: the static release build, target/<arch>-unknown-linux-musl/release/skiff; --build
# builds it first, see build_release_skiff in hack/lib.sh).
#
# Benchmarks (run and cycle use a fresh container id in every iteration):
#   run   : `<rt> run --bundle B ID` of /bin/true
#   cycle : `<rt> create --bundle B ID`, `<rt> start ID`, `<rt> delete --force ID` (three processes)
#   exec  : `<rt> exec ID /bin/true` into one long-running container (sleep) per runtime
#   many  : 100 `run`s, 10 at a time (total wall)
#   also  : CPU time of `run`, peak RSS of the runtime during `create`, stripped binary size
#   --image: then hack/bench-image.sh (skiff-image pull + unpack vs skopeo + umoci)
# Same config (made by `skiff spec`, else `runc spec`), same busybox rootfs, terminal false,
# each runtime with its own --root.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=hack/lib.sh
source hack/lib.sh

runtimes="${RUNTIMES:-skiff runc crun}"
runs="${RUNS:-100}"
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
	-h | --help) sed -n '2,18p' "$0"; exit 0 ;;
	*) echo "unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

need_root
apt_install busybox-static runc crun time
command -v python3 >/dev/null 2>&1 || apt_install python3-minimal

skiff="${SKIFF:-$(skiff_release_path)}"
if [[ -n $build ]]; then
	build_release_skiff
	skiff=${SKIFF:-$skiff_release}
fi

declare -A bin
selected=()
for rt in $runtimes; do
	case $rt in
	skiff) b=$skiff ;;
	runc | crun) b=$(runtime_bin "$rt") ;;
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
		delete_all "${bin[$rt]}" "$work/root-$rt"
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
echo "bench: bundle $bundle (config from $(basename "$spec_from") spec), runtimes: ${selected[*]}, $runs alternating runs each"

# The kernel tears network namespaces and cgroups down in the background (kworkers) well after
# their containers are gone: right after a test suite that is seconds of CPU, which would land
# on whichever runtime runs then. Wait (up to 60 s) until the CPUs are 90% idle.
settle() {
	local i idle=0
	for i in $(seq 60); do
		idle=$(python3 -c '
import time
def snap():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return f[3] + f[4], sum(f)
i0, t0 = snap(); time.sleep(1); i1, t1 = snap()
print(int(100 * (i1 - i0) / max(1, t1 - t0)))')
		((idle >= 90)) && return 0
		((i == 1)) && echo "bench: waiting for the machine to settle (idle ${idle}%)" >&2
	done
	echo "bench: warning: the machine is busy (idle ${idle}%); figures will be noisy" >&2
}
settle

for rt in "${selected[@]}"; do
	"${bin[$rt]}" --root "$work/root-$rt" run -d --bundle "$exec_bundle" exec-target </dev/null >/dev/null
done
# The runtimes take turns in every iteration (the first of the turn rotates), so that the
# machine's drift over a run lands on all of them alike; each sample is one fork+exec+wait4 from
# here: wall time, and the runtime's CPU time with that of the children it waited for.
args=()
for rt in "${selected[@]}"; do args+=("$rt=${bin[$rt]}"); done
python3 - "$work" "$bundle" "$runs" "${MANY_RUNS:-5}" "${args[@]}" <<'PY'
import concurrent.futures as cf, os, statistics, subprocess, sys, time

work, bundle, runs, many_runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rts = [a.split("=", 1) for a in sys.argv[5:]]
names = [n for n, _ in rts]
devnull = os.open(os.devnull, os.O_RDWR)
seq = [0]

def uid(prefix):
    seq[0] += 1
    return f"{prefix}{os.getpid()}-{seq[0]}"

def spawn(argv):
    """Run argv: (wall s, CPU s of it and the children it waited for, wait status).
    posix_spawn (a vfork) rather than fork: no copy of this Python's page tables in the time."""
    t = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[
        (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
        (os.POSIX_SPAWN_DUP2, devnull, 2)])
    _, status, ru = os.wait4(pid, 0)
    return time.perf_counter() - t, ru.ru_utime + ru.ru_stime, status

def cmds(bench, name, b):
    r = f"{work}/root-{name}"
    if bench == "run":
        return [[b, "--root", r, "run", "--bundle", bundle, uid("r")]]
    if bench == "cycle":
        i = uid("c")
        return [[b, "--root", r, "create", "--bundle", bundle, i], [b, "--root", r, "start", i],
                [b, "--root", r, "delete", "--force", i]]
    if bench == "exec":
        return [[b, "--root", r, "exec", "exec-target", "/bin/true"]]
    raise ValueError(bench)

def turns(it):
    k = it % len(rts)
    return rts[k:] + rts[:k]

def alternate(bench, n, warmup):
    wall = {x: [] for x in names}
    cpu = {x: [] for x in names}
    for it in range(warmup + n):
        for name, b in turns(it):
            w = c = 0.0
            for argv in cmds(bench, name, b):
                dw, dc, st = spawn(argv)
                if st != 0:
                    sys.exit(f"bench: {name}: {' '.join(argv)} failed (wait status {st})")
                w += dw
                c += dc
            if it >= warmup:
                wall[name].append(w * 1e3)
                cpu[name].append(c * 1e3)
    return wall, cpu

def many(name, b):
    r = f"{work}/root-{name}"
    def one(i):
        p = subprocess.run([b, "--root", r, "run", "--bundle", bundle, uid(f"m{i}-")],
                           stdin=devnull, stdout=devnull, stderr=devnull)
        return p.returncode
    t = time.perf_counter()
    with cf.ThreadPoolExecutor(10) as ex:
        codes = list(ex.map(one, range(100)))
    if any(codes):
        sys.exit(f"bench: {name}: a run failed in the 100 x run benchmark")
    return (time.perf_counter() - t) * 1e3

results = {}
results["run"], run_cpu = alternate("run", runs, 5)
results["create+start+delete"], _ = alternate("cycle", runs, 5)
results["exec"], _ = alternate("exec", runs, 5)
m = {x: [] for x in names}
for it in range(1 + many_runs):
    for name, b in turns(it):
        v = many(name, b)
        if it >= 1:
            m[name].append(v)
results["100 x run, 10 at a time"] = m
rss = {x: [] for x in names}
for it in range(7):
    for name, b in turns(it):
        i = uid("s")
        r = f"{work}/root-{name}"
        # GNU time's %M: a child forked from this (large) Python would count Python's pages
        # in ru_maxrss, which an exec does not reset; time's own pages are fewer.
        out = f"{work}/maxrss"
        _, _, st = spawn(["/usr/bin/time", "-f", "%M", "-o", out, b, "--root", r, "create",
                             "--bundle", bundle, i])
        spawn([b, "--root", r, "delete", "--force", i])
        if st != 0:
            sys.exit(f"bench: {name}: create failed")
        rss[name].append(int(open(out).read().split()[-1]))
size = {n: os.stat(b).st_size for n, b in rts}

refs = [r for r in ("crun", "runc") if r in names]
print("\nMedians; ratio = this runtime's value / the reference's (below 1 is better);")
print("p25..p75: the middle half of the samples.")
def table(title, values, unit, fmt="{:>12.2f}", spread=None):
    print(f"\n{title} ({unit})")
    head = f"{'runtime':<10}{'value':>12}" + "".join(f"{'/' + r:>8}" for r in refs)
    print(head + ("   p25..p75" if spread else ""))
    for n in names:
        v = values[n]
        line = f"{n:<10}" + fmt.format(v) + "".join(f"{v / values[r]:>8.2f}" for r in refs)
        if spread and len(spread[n]) >= 2:
            q = statistics.quantiles(spread[n], n=4)
            line += f"   {q[0]:.2f}..{q[2]:.2f}"
        print(line)
med = lambda d: {n: statistics.median(v) for n, v in d.items()}
for b, per in results.items():
    table(b + ", median wall", med(per), "ms", spread=per)
table("run, CPU time user+sys, median", med(run_cpu), "ms", spread=run_cpu)
table("create, peak RSS of the runtime process (median of 7)", med(rss), "KiB", "{:>12.0f}")
table("binary size", {n: size[n] / 1e6 for n in names}, "MB")
PY
# The exec targets go now, before the image benchmark (cleanup at exit tries again what failed:
# runc 1.1 may find a cgroup still busy right after its kill).
for rt in "${selected[@]}"; do
	delete_all "${bin[$rt]}" "$work/root-$rt"
done

if [[ -n $image ]]; then
	"$repo/hack/bench-image.sh"
fi
