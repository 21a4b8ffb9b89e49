#!/usr/bin/env bash
# Docker smoke test: Debian's dockerd (docker.io) with RUNTIME as its default runtime.
#
#   hack/engines/docker.sh RUNTIME_PATH      e.g. /usr/sbin/runc or target/release/skiff
#
# dockerd runs privately: data root, exec root, pid file, socket and its own containerd under a
# temp dir, cgroups under a parent of its own, a bridge of its own (no iptables: a published port
# is served by docker-proxy on loopback). See common.sh for the output and environment knobs.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

smoke_init docker "${1:-}"
install_engine docker.io busybox-static python3 || {
	echo "setup: cannot install docker.io" >&2
	exit 1
}

cg_parent="/skiff-smoke-docker-$tag"
bridge="skd$tag"
# 10.199.X.0/24 with X from the tag, so overlapping runs do not share a subnet.
subnet_x=$(($(printf '%d' "'${tag:0:1}") * 7 % 250 + $(printf '%d' "'${tag:1:1}") % 5))
bridge_ip="10.199.$subnet_x.1/24"
img=smoke-busybox
ctr_prefix=smk

# The docker command with its private socket (also for pty_run and timeout: see cli-checks.sh).
ecli=(/usr/bin/docker -H "unix://$tmp/docker.sock")
D() { "${ecli[@]}" "$@"; }

# --- start ---
dockerd_pid=
stop_dockerd() {
	local ids
	if [[ -n $dockerd_pid ]] && kill -0 "$dockerd_pid" 2>/dev/null; then
		ids=$(D ps -aq 2>/dev/null)
		[[ -n $ids ]] && D rm -f $ids
		D volume prune -f
		stop_pid "$dockerd_pid"
	fi
	unmount_under "$tmp"
	ip link del "$bridge" 2>/dev/null
	remove_cgroup_parent "$cg_parent"
}
on_exit stop_dockerd

# dockerd's containerd puts shim sockets in /run/containerd/s whatever its own paths.
note_host_dirs /run/containerd /run/containerd/s
ip link add "$bridge" type bridge || exit 1
ip addr add "$bridge_ip" dev "$bridge" || exit 1
ip link set "$bridge" up || exit 1

mkdir -p "$tmp/data" "$tmp/exec"
dockerd --data-root "$tmp/data" --exec-root "$tmp/exec" --pidfile "$tmp/dockerd.pid" \
	-H "unix://$tmp/docker.sock" --storage-driver overlay2 \
	--exec-opt native.cgroupdriver=cgroupfs --cgroup-parent "$cg_parent" \
	--bridge "$bridge" --iptables=false --ip-forward=false --ip-masq=false --userland-proxy=true \
	--add-runtime "smoke=$runtime_for_engine" --default-runtime smoke \
	--init-path /usr/bin/docker-init \
	>"$tmp/dockerd.log" 2>&1 &
dockerd_pid=$!

setup() {
	wait_for 30 D version || { tail -20 "$tmp/dockerd.log"; return 1; }
	make_rootfs_tar
	D import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
		"$rootfs_tar" "$img" >/dev/null
	D info --format '{{.DefaultRuntime}}' | grep -qx smoke
}
check setup setup || {
	summary
	exit 1
}

# --- what differs from podman; the shared checks are in cli-checks.sh ---
run_base=()
run_isolated=(--network none)
bridge_opts=()
rm_now=(rm -f)
readonly_opts=(--read-only)
init_comm_re='^docker-init'
# docker 20.10 reports any exec start failure as 126.
exec_error_rc_re='^12[67]$'
stats_format='{{.MemUsage}} {{.PIDs}}'
update_pids=1
userns_skip="docker has only daemon-wide --userns-remap"

c_seccomp() {
	# Docker's default profile filters unshare(CLONE_NEWUSER) without CAP_SYS_ADMIN.
	expect_eq "2 blocked" "$(R --rm "$img" sh -c 'echo $(grep ^Seccomp: /proc/self/status | cut -f2) $(unshare -U true 2>/dev/null && echo allowed || echo blocked)')" &&
		expect_eq "0 allowed" "$(R --rm --security-opt seccomp=unconfined "$img" sh -c 'echo $(grep ^Seccomp: /proc/self/status | cut -f2) $(unshare -U true 2>/dev/null && echo allowed || echo blocked)')"
}

c_oom() {
	local rc=0
	# The allocation starts a second after the start: containerd 1.6's shim watches for OOM
	# only once the runtime's start has returned, and misses an OOM before that (dockerd then
	# reports OOMKilled false; seen with runc, 1 in 40 runs).
	R --name "${ctr_prefix}-oom" -m 32m --memory-swap 32m "$img" sh -c 'sleep 1; tail /dev/zero' || rc=$?
	local ok=0
	expect_eq 137 "$rc" "exit status" &&
		expect_eq true "$(D inspect -f '{{.State.OOMKilled}}' "${ctr_prefix}-oom")" "State.OOMKilled" || ok=1
	D rm -f "${ctr_prefix}-oom" >/dev/null
	return $ok
}

source "$engines_dir/cli-checks.sh"

c_leftovers() {
	local bad=0 x
	if [[ -n ${SMOKE_ONLY:-} ]]; then
		x=$(D ps -aq)
		[[ -z $x ]] || D rm -f $x >/dev/null
	fi
	x=$(D ps -aq)
	[[ -z $x ]] || { echo "containers: $x"; bad=1; }
	# Shims started by dockerd's containerd mention its socket under $tmp/exec.
	x=$(procs_mentioning "$tmp/exec/containerd/containerd.sock" | grep -v ' containerd --config' || true)
	x=$(echo "$x" | grep -i shim || true)
	[[ -z $x ]] || { echo "shims: $x"; bad=1; }
	x=$(find "$tmp/exec" -path '*/runtime-*/moby/*' -maxdepth 4 2>/dev/null)
	[[ -z $x ]] || { echo "runtime state: $x"; bad=1; }
	x=$(cgroup_leftovers "$cg_parent")
	[[ -z $x ]] || { echo "cgroups: $x"; bad=1; }
	# dockerd's own: its data root (made private) and its default netns.
	x=$(mounts_under "$tmp" | grep -Evx "$tmp/data|$tmp/data/overlay2|$tmp/exec/netns/default" || true)
	[[ -z $x ]] || { echo "mounts: $x"; bad=1; }
	x=$(procs_running "$runtime")
	[[ -z $x ]] || { echo "runtime processes: $x"; bad=1; }
	return $bad
}
check leftovers c_leftovers

summary
