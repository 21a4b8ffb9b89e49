#!/bin/bash
# pull + unpack of a ~100 MB, 4-layer image from a loopback docker-registry:
# skiff-image vs skopeo copy + umoci unpack (hyperfine), ratio printed.
# Needs root; installs docker-registry, skopeo, umoci, busybox-static, hyperfine, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/lib.sh
source hack/lib.sh
need_root
need_cargo
apt_install docker-registry skopeo umoci busybox-static hyperfine python3
cargo build --release --bin skiff-image -q
bin=$PWD/target/release/skiff-image
w=$(mktemp -d /var/tmp/skiff-bench-image.XXXXXX)
reg_pid=
cleanup() { [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$w"; }
trap cleanup EXIT

# The image: busybox, then 4 layers of ~25 MB (half random, half text).
L=$w/layout B=$w/build
umoci init --layout "$L"; umoci new --image "$L:big"
umoci unpack --image "$L:big" "$B" >/dev/null
mkdir -p "$B/rootfs/bin"; cp /bin/busybox "$B/rootfs/bin/"
umoci repack --image "$L:big" "$B"
for i in 1 2 3 4; do
  rm -rf "$B"; umoci unpack --image "$L:big" "$B" >/dev/null
  d=$B/rootfs/data$i; mkdir -p "$d"
  for j in $(seq 1 100); do head -c 131072 /dev/urandom > "$d/r$j"; done
  for j in $(seq 1 100); do seq $((j * 1000)) $((j * 1000 + 20000)) > "$d/t$j"; done
  umoci repack --image "$L:big" "$B"
done
umoci config --image "$L:big" --config.cmd /bin/busybox --config.cmd true
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
hack/image-registry.sh "$port" "$w/registry" >/dev/null 2>&1 & reg_pid=$!
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
ref=127.0.0.1:$port/bench/big:v1
skopeo copy -q --dest-tls-verify=false "oci:$L:big" "docker://$ref"
du -sh "$L/blobs" | sed 's/^/compressed image size: /'

hyperfine --warmup 1 --runs 5 --export-json "$w/h.json" \
  -n skiff-image "rm -rf $w/s $w/b; $bin --store $w/s pull -q $ref >/dev/null && $bin --store $w/s unpack $ref $w/b" \
  -n skopeo+umoci "rm -rf $w/o $w/u; skopeo copy -q --src-tls-verify=false docker://$ref oci:$w/o:t && umoci unpack --image $w/o:t $w/u >/dev/null"
python3 - "$w/h.json" <<'PY'
import json, sys
r = {x["command"]: x["mean"] for x in json.load(open(sys.argv[1]))["results"]}
print(f"skiff-image {r['skiff-image']:.3f}s, skopeo+umoci {r['skopeo+umoci']:.3f}s: "
      f"ratio {r['skopeo+umoci'] / r['skiff-image']:.2f}x (skopeo+umoci time / skiff-image time)")
PY
