#!/bin/bash
# Capture the linux.seccomp section of the config.json that Docker and Podman
# (from Debian) write for a default container on this machine, as test
# fixtures: integration/fixtures/seccomp/{docker,podman}.json.
#
# Both engines run privately (own data/state dirs, sockets and cgroup parent
# under a temp dir) and reach runc through a wrapper that copies the bundle's
# config.json before handing over to /usr/sbin/runc, so nothing depends on
# where each engine keeps its bundles. Everything started is stopped by pid
# and removed at the end.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out="$repo/integration/fixtures/seccomp"
mkdir -p "$out"

if [ "$(id -u)" != 0 ]; then
	echo "must run as root" >&2
	exit 1
fi

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v podman >/dev/null || need+=(podman)
command -v conmon >/dev/null || need+=(conmon)
command -v busybox >/dev/null || need+=(busybox-static)
command -v jq >/dev/null || need+=(jq)
if [ ${#need[@]} -gt 0 ]; then
	# Keep package scripts from starting system daemons.
	policy=/usr/sbin/policy-rc.d
	created_policy=
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
		created_policy=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
	[ -n "$created_policy" ] && rm -f "$policy"
fi

tmp=$(mktemp -d /tmp/skiff-capture.XXXXXX)
dockerd_pid=
cleanup() {
	set +e
	if [ -n "$dockerd_pid" ]; then
		DOCKER_HOST="unix://$tmp/docker.sock" /usr/bin/docker rm -f skiff-capture >/dev/null 2>&1
		kill "$dockerd_pid" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
	fi
	podman_cmd rm -f skiff-capture >/dev/null 2>&1
	podman_cmd rmi -f skiff-capture-busybox >/dev/null 2>&1
	# Overlay mounts of the engines' storage.
	grep " $tmp/" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l
	rm -rf "$tmp"
}
trap cleanup EXIT

podman_cmd() {
	podman --root "$tmp/podman/root" --runroot "$tmp/podman/runroot" \
		--runtime "$tmp/runc-wrapper" --cgroup-manager cgroupfs \
		--events-backend file --storage-driver vfs "$@"
}

# A busybox rootfs, imported as an image by both engines.
mkdir -p "$tmp/rootfs/bin" "$tmp/rootfs/etc"
cp "$(command -v busybox)" "$tmp/rootfs/bin/busybox"
chroot "$tmp/rootfs" /bin/busybox --install -s /bin
echo 'root:x:0:0:root:/root:/bin/sh' >"$tmp/rootfs/etc/passwd"
echo 'root:x:0:' >"$tmp/rootfs/etc/group"
tar -C "$tmp/rootfs" -cf "$tmp/rootfs.tar" .

# The runtime wrapper: record config.json at `create`, then run runc.
cat >"$tmp/runc-wrapper" <<WRAP
#!/bin/sh
bundle=
prev=
for a in "\$@"; do
	case "\$prev" in --bundle|-b) bundle="\$a" ;; esac
	case "\$a" in --bundle=*) bundle="\${a#--bundle=}" ;; esac
	prev="\$a"
done
if [ -n "\$bundle" ] && [ -f "\$bundle/config.json" ]; then
	cp "\$bundle/config.json" "\${CAPTURE_TO:-$tmp/captured}.json" 2>/dev/null
	cp "\$bundle/config.json" "$tmp/last-config.json"
fi
exec /usr/sbin/runc "\$@"
WRAP
chmod +x "$tmp/runc-wrapper"

# --- Docker ---
mkdir -p "$tmp/docker"
dockerd --data-root "$tmp/docker/data" --exec-root "$tmp/docker/exec" \
	--pidfile "$tmp/docker/dockerd.pid" -H "unix://$tmp/docker.sock" \
	--storage-driver vfs --exec-opt native.cgroupdriver=cgroupfs \
	--cgroup-parent skiff-capture --bridge=none \
	--iptables=false --ip-forward=false --ip-masq=false --userland-proxy=false \
	--add-runtime "capture=$tmp/runc-wrapper" --default-runtime capture \
	>"$tmp/dockerd.log" 2>&1 &
dockerd_pid=$!
export DOCKER_HOST="unix://$tmp/docker.sock"
for _ in $(seq 100); do
	/usr/bin/docker version >/dev/null 2>&1 && break
	sleep 0.2
done
/usr/bin/docker import "$tmp/rootfs.tar" skiff-capture-busybox >/dev/null
rm -f "$tmp/last-config.json"
# dockerd writes config.json only when the container is started.
/usr/bin/docker run --name skiff-capture --network none skiff-capture-busybox /bin/true
jq '.linux.seccomp' "$tmp/last-config.json" >"$out/docker.json"
/usr/bin/docker rm -f skiff-capture >/dev/null
unset DOCKER_HOST

# --- Podman ---
mkdir -p "$tmp/podman"
podman_cmd import "$tmp/rootfs.tar" skiff-capture-busybox >/dev/null
rm -f "$tmp/last-config.json"
# `podman init` creates the container through the runtime without starting it.
podman_cmd create --name skiff-capture --network none \
	--ulimit nofile=20000:20000 --ulimit nproc=32768:32768 \
	skiff-capture-busybox /bin/true >/dev/null
podman_cmd init skiff-capture >/dev/null
jq '.linux.seccomp' "$tmp/last-config.json" >"$out/podman.json"

echo "captured: $out/docker.json $out/podman.json"
