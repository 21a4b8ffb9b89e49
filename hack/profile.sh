#!/usr/bin/env bash
# Where a runtime's work goes, side by side for skiff, crun and runc, on the bench bundle
# (busybox rootfs, `skiff spec` defaults, /bin/true):
#   - syscalls of `run`, runtime and container init together (strace -f -c): count, errors,
#     and the most frequent ones;
#   - the resident set of the runtime process during `create`, by mapping (read from
#     /proc/<runtime>/smaps by a createRuntime hook, which the runtime runs as its child).
#
#   hack/profile.sh [--runtimes "skiff crun runc"]      (SKIFF= as for hack/bench.sh)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=hack/lib.sh
source hack/lib.sh

runtimes="${RUNTIMES:-skiff crun runc}"
while (($#)); do
	case $1 in
	--runtimes) runtimes=$2; shift ;;
	--runtimes=*) runtimes=${1#*=} ;;
	-h | --help) sed -n '2,9p' "$0"; exit 0 ;;
	*) echo "unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

need_root
apt_install busybox-static strace runc crun
command -v python3 >/dev/null 2>&1 || apt_install python3-minimal
skiff="${SKIFF:-$(skiff_release_path)}"
if [[ ! -x $skiff ]]; then
	build_release_skiff
	skiff=$skiff_release
fi
declare -A bin=([skiff]=$skiff [crun]=$(runtime_bin crun) [runc]=$(runtime_bin runc))
for rt in $runtimes; do
	[[ -n ${bin[$rt]:-} ]] || { echo "profile: unknown runtime $rt (skiff, crun, runc)" >&2; exit 2; }
done
if [[ " $runtimes " == *" crun "* ]]; then
	mount_hugetlb_v1_for_crun
fi

./hack/mkrootfs.sh
work="$(mktemp -d /tmp/skiff-profile.XXXXXX)"
chmod 755 "$work"
cleanup() {
	local rt
	for rt in $runtimes; do
		delete_all "${bin[$rt]}" "$work/root-$rt"
	done
	rm -rf "$work"
}
trap cleanup EXIT
make_true_bundle "$work/bundle" "$skiff"
# The same bundle with a createRuntime hook that copies the runtime's smaps (the hook's parent),
# and the same rootfs by absolute path (runc refuses a symlinked one).
mkdir -p "$work/hooked"
python3 - "$work/bundle/config.json" "$work/hooked/config.json" "$work/bundle/rootfs" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["root"]["path"] = sys.argv[3]
c["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", 'cat /proc/$PPID/smaps > "$0"', sys.argv[2] + ".smaps"]}]}
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY

for rt in $runtimes; do
	b=${bin[$rt]} r="$work/root-$rt"
	# One warm-up run, then the traced one.
	"$b" --root "$r" run --bundle "$work/bundle" warm </dev/null >/dev/null
	strace -f -c -o "$work/$rt.strace" "$b" --root "$r" run --bundle "$work/bundle" traced </dev/null >/dev/null
	"$b" --root "$r" create --bundle "$work/hooked" hooked </dev/null >/dev/null
	"$b" --root "$r" delete --force hooked >/dev/null 2>&1 || true
	mv "$work/hooked/config.json.smaps" "$work/$rt.smaps"
done

python3 - "$work" $runtimes <<'PY'
import collections, re, sys
work, names = sys.argv[1], sys.argv[2:]

def strace_counts(path):
    calls, errors = {}, {}
    for line in open(path):
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            calls[f[-1]] = int(f[3])
            errors[f[-1]] = int(f[4]) if len(f) == 6 else 0
    return calls, errors

def smaps(path):
    rss = collections.Counter()
    name = None
    for line in open(path):
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            f = line.split()
            what = f[5] if len(f) > 5 else "[anonymous]"
            if what.startswith("/") and "/lib" not in what:
                what = "(runtime binary)"
            elif what.startswith("/"):
                what = what.rsplit("/", 1)[1]
            name = f"{what} {f[1]}"
        elif line.startswith("Rss:") and name:
            rss[name] += int(line.split()[1])
    return rss

sc = {n: strace_counts(f"{work}/{n}.strace") for n in names}
print("\nrun of /bin/true: syscalls of the runtime and the container init (strace -f -c)")
print(f"{'':<18}" + "".join(f"{n:>10}" for n in names))
print(f"{'total':<18}" + "".join(f"{sum(sc[n][0].values()):>10}" for n in names))
print(f"{'failed':<18}" + "".join(f"{sum(sc[n][1].values()):>10}" for n in names))
top = collections.Counter()
for n in names:
    top.update(sc[n][0])
for call, _ in top.most_common(20):
    print(f"{call:<18}" + "".join(f"{sc[n][0].get(call, 0):>10}" for n in names))

print("\ncreate: resident set of the runtime process, KiB, by mapping (from its smaps)")
for n in names:
    rss = smaps(f"{work}/{n}.smaps")
    print(f"{n}: {sum(rss.values())} KiB")
    for what, kib in rss.most_common():
        if kib >= 16:
            print(f"  {kib:>6}  {what}")
PY
