#!/usr/bin/env python3
"""Wrap a rootfs tarball into a single-layer OCI image archive that `ctr images import` reads.

    mkociarchive.py ROOTFS_TAR IMAGE_NAME OUT_TAR [CMD...]

The image gets linux/amd64 (the host's architecture), Cmd CMD (default ["/bin/sh"]) and a PATH.
No compression: the layer is the rootfs tarball itself.
"""
import hashlib
import io
import json
import os
import platform
import sys
import tarfile


def main():
    rootfs_tar, name, out = sys.argv[1:4]
    cmd = sys.argv[4:] or ["/bin/sh"]
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())

    h = hashlib.sha256()
    size = 0
    with open(rootfs_tar, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    layer_digest = "sha256:" + h.hexdigest()

    config = {
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }
    blobs = {}

    def blob(data):
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[d] = data
        return d, len(data)

    cfg_digest, cfg_size = blob(json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": cfg_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": size}],
    }
    man_digest, man_size = blob(json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": man_digest,
            "size": man_size,
            "platform": {"architecture": arch, "os": "linux"},
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]},
        }],
    }

    def add(tf, path, data):
        ti = tarfile.TarInfo(path)
        ti.size = len(data)
        ti.mode = 0o644
        tf.addfile(ti, io.BytesIO(data))

    with tarfile.open(out, "w") as tf:
        add(tf, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        add(tf, "index.json", json.dumps(index).encode())
        for d, data in blobs.items():
            add(tf, "blobs/sha256/" + d.split(":")[1], data)
        tf.add(rootfs_tar, arcname="blobs/sha256/" + layer_digest.split(":")[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
