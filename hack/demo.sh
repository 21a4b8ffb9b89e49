#!/usr/bin/env bash
# Build skiff and run a busybox container that shows its isolation. Needs root.
#
#   hack/demo.sh            (SKIFF=/path/to/runtime hack/demo.sh to try another runtime)
#
# Offline apart from Debian's package registry: the rootfs comes from busybox-static.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=hack/lib.sh
source hack/lib.sh

need_root
apt_install busybox-static
command -v python3 >/dev/null 2>&1 || apt_install python3-minimal

skiff="${SKIFF:-}"
if [[ -z $skiff ]]; then
	echo "== building skiff (release)"
	build_release_skiff
	skiff=$skiff_release
fi

./hack/mkrootfs.sh
work="$(mktemp -d /tmp/skiff-demo.XXXXXX)"
chmod 755 "$work"
id="demo-$$"
cleanup() {
	"$skiff" --root "$work/state" delete --force "$id" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

bundle="$work/bundle"
mkdir -p "$bundle"
cp -a fixtures/busybox-rootfs "$bundle/rootfs"
"$skiff" spec --bundle "$bundle"

tty=false
[[ -t 0 && -t 1 ]] && tty=true
python3 - "$bundle/config.json" "$tty" <<'PY'
import json, sys
path, tty = sys.argv[1], sys.argv[2] == "true"
c = json.load(open(path))
c["process"]["terminal"] = tty
c["hostname"] = "skiff-demo"
c["root"]["readonly"] = True
script = r"""
echo "hostname:  $(hostname)   (the host is $HOST_NAME)"
echo "my pid:    $$"
echo "id:        $(id)"
echo
echo "--- ps: the only processes this container can see"
ps -o pid,user,comm
echo
echo "--- its own mount table (mountpoint fstype options)"
awk '{print $2, $3, $4}' /proc/self/mounts
echo
echo "--- /dev"
ls /dev
echo
echo "--- network interfaces"
ls /sys/class/net
"""
c["process"]["args"] = ["sh", "-c", script]
c["process"]["env"] = [e for e in c["process"].get("env", []) if not e.startswith("HOST_NAME=")]
c["process"]["env"].append("HOST_NAME=" + open("/proc/sys/kernel/hostname").read().strip())
json.dump(c, open(path, "w"), indent=2)
PY

echo "== $skiff run --bundle $bundle $id   (terminal: $tty)"
echo
"$skiff" --root "$work/state" run --bundle "$bundle" "$id"
echo
echo "== the container is gone again:"
"$skiff" --root "$work/state" list
