#!/bin/bash
# Builds the OCI layout the skiff-image tests push to their registry:
#   hello        two layers (busybox-static rootfs, then a change with a
#                whiteout), Cmd prints a greeting, User app (uid 1000)
#   hello-arm64  the same config, architecture arm64
#   zstd         hello with zstd-compressed layers, in its own layout OUT/zstd
#   multi        an image index of hello (linux/amd64) and hello-arm64
#                (linux/arm64), in its own layout OUT/multi
# Usage: hack/image-fixtures.sh OUT_DIR   (needs umoci, busybox-static, python3)
set -euo pipefail
out=${1:?usage: $0 OUT_DIR}
[ -f "$out/done" ] && exit 0
rm -rf "$out.tmp"; mkdir -p "$out.tmp"; o=$out.tmp
L=$o/layout B=$o/bundle
umoci init --layout "$L"
umoci new --image "$L:base"
umoci unpack --image "$L:base" "$B" >/dev/null
r=$B/rootfs
mkdir -p "$r"/{bin,etc,tmp,srv,root}
cp /bin/busybox "$r/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/srv:/bin/sh\n' > "$r/etc/passwd"
printf 'root:x:0:\napp:x:1000:\nextra:x:2000:app\n' > "$r/etc/group"
echo "removed in layer 2" > "$r/etc/removed-later"
chmod 1777 "$r/tmp"
umoci repack --image "$L:base" "$B"
rm -rf "$B"; umoci unpack --image "$L:base" "$B" >/dev/null
rm "$r/etc/removed-later"
echo "data from layer 2" > "$r/srv/data.txt"
ln "$r/srv/data.txt" "$r/srv/hardlink.txt"
umoci repack --image "$L:base" "$B"
umoci config --image "$L:base" --tag hello \
  --config.cmd /bin/sh --config.cmd -c \
  --config.cmd 'echo "cmd says: $GREETING from $(pwd) as $(id -u):$(id -g)"' \
  --config.env GREETING=hello --config.workingdir /srv --config.user app \
  --config.stopsignal SIGQUIT --config.label org.example.test=yes
umoci config --image "$L:hello" --tag hello-arm64 --architecture arm64
umoci rm --image "$L:base"
rm -rf "$B"

# The index: a second layout sharing the blobs, with one image index.
python3 - "$L" "$o/multi" <<'PY'
import hashlib, json, os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
shutil.copytree(src, dst)
idx = json.load(open(os.path.join(dst, "index.json")))
by = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in idx["manifests"]}
ms = []
for tag, arch in (("hello", "amd64"), ("hello-arm64", "arm64")):
    d = dict(by[tag]); d.pop("annotations", None)
    d["platform"] = {"architecture": arch, "os": "linux"}
    ms.append(d)
body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": ms}).encode()
h = hashlib.sha256(body).hexdigest()
open(os.path.join(dst, "blobs/sha256", h), "wb").write(body)
top = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
       "digest": "sha256:" + h, "size": len(body),
       "annotations": {"org.opencontainers.image.ref.name": "multi"}}]}
json.dump(top, open(os.path.join(dst, "index.json"), "w"))
PY
# zstd: the same layers recompressed.
python3 - "$L" "$o/zstd" <<'PY'
import hashlib, json, os, shutil, subprocess, sys
src, dst = sys.argv[1], sys.argv[2]
shutil.copytree(src, dst)
blob = lambda d: os.path.join(dst, "blobs/sha256", d.split(":")[1])
def put(data):
    h = hashlib.sha256(data).hexdigest()
    open(os.path.join(dst, "blobs/sha256", h), "wb").write(data)
    return "sha256:" + h
idx = json.load(open(os.path.join(dst, "index.json")))
desc = [m for m in idx["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == "hello"][0]
man = json.load(open(blob(desc["digest"])))
for l in man["layers"]:
    raw = subprocess.run(["gzip", "-dc", blob(l["digest"])], check=True, capture_output=True).stdout
    z = subprocess.run(["zstd", "-q", "-c"], input=raw, check=True, capture_output=True).stdout
    l["digest"], l["size"] = put(z), len(z)
    l["mediaType"] = "application/vnd.oci.image.layer.v1.tar+zstd"
body = json.dumps(man).encode()
idx["manifests"] = [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(body), "size": len(body),
                     "annotations": {"org.opencontainers.image.ref.name": "zstd"}}]
json.dump(idx, open(os.path.join(dst, "index.json"), "w"))
PY
touch "$o/done"
rm -rf "$out"; mv "$o" "$out"
