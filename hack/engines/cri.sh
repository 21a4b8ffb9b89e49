#!/usr/bin/env bash
# Kubernetes CRI smoke test: kubelet's path to the runtime. A small CRI client
# (hack/engines/cri-client, playing kubelet) drives Debian's containerd through its CRI plugin,
# which runs every pod with the runc v2 shim and RUNTIME, chosen per pod by a RuntimeClass
# handler (`smoke`) whose BinaryName is RUNTIME.
#
#   hack/engines/cri.sh RUNTIME_PATH      e.g. /usr/sbin/runc or target/release/skiff
#
# Everything is private and removed at exit: containerd's root, state and socket under a temp
# dir (the CRI plugin's namespace is always k8s.io, but inside this containerd only), the
# runtime's state in the handler's Root under the temp dir, cgroups under /smoke-cri-TAG, a CNI
# bridge skcTAG with the subnet 10.197.X.0/24 (X from the tag) and its IPAM data under the temp
# dir, network namespaces under containerd's state dir, pod logs under the temp dir.
# Images: busybox (hack/mkrootfs.sh) is pushed to Debian's docker-registry on 127.0.0.1:PORT
# and pulled by the CRI (containerd 1.6's PullImage always asks a registry), through a
# hosts.toml naming registry.smoke.invalid -> 127.0.0.1:PORT, with no fallback; the pause image
# (a static C program that sleeps until SIGTERM/SIGINT and reaps children) is imported with ctr.
# This machine's capability bounding set lacks CAP_SYS_RESOURCE: restrict_oom_score_adj keeps
# the sandboxes' oom_score_adj (-998) within what containerd may set.
# hostPort: CNI's portmap DNATs 127.0.0.1:PORT (it sets route_localnet on the bridge itself).
# See common.sh for the output and environment knobs.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

smoke_init cri "${1:-}"
install_engine containerd runc containernetworking-plugins iptables docker-registry skopeo \
	busybox-static python3 jq gcc libc6-dev protobuf-compiler || {
	echo "setup: cannot install containerd and the CRI test's tools" >&2
	exit 1
}

sock="$tmp/c.sock"
handler=smoke
cg_parent="/smoke-cri-$tag"
bridge="skc$tag"
subnet_x=$(($(printf '%d' "'${tag:0:1}") * 7 % 250 + $(printf '%d' "'${tag:1:1}") % 5))
subnet_prefix="10.197.$subnet_x"
reg_host=registry.smoke.invalid
img="$reg_host/smoke/busybox:latest"
pause_img="$reg_host/smoke/pause:1"
rt_root="$tmp/rt-root"     # the runtime under test's --root (handler smoke)
runc_root="$tmp/runc-root" # Debian's runc's --root (handler runc)
cri_client="$repo/target/cri-client/release/cri-client"

export CRI_SOCKET="$sock" CRI_STATE="$tmp/cri-state" CRI_RUNTIME_HANDLER="$handler"
export CRI_CGROUP_PARENT="$cg_parent" CRI_LOG_DIR="$tmp/pod-logs" CRI_IMAGE="$img"
K() { "$cri_client" "$@"; }
C() { ctr --address "$sock" -n k8s.io "$@"; }
# The shims' sockets go there whatever the config says.
note_host_dirs /run/containerd /run/containerd/s

mkdir -p "$tmp/cni" "$tmp/ipam" "$tmp/certs.d/$reg_host" "$tmp/vol" "$CRI_LOG_DIR"
cat >"$tmp/cni/10-smoke.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "smoke-cri-$tag",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$subnet_prefix.0/24" }]],
        "dataDir": "$tmp/ipam"
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF

cat >"$tmp/config.toml" <<EOF
version = 2
root = "$tmp/root"
state = "$tmp/state"
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$tmp/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_img"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_tls_streaming = false
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        Root = "$runc_root"
        SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.$handler]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.$handler.options]
        BinaryName = "$runtime_for_engine"
        Root = "$rt_root"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$tmp/cni"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$tmp/certs.d"
EOF

ip_forward_was=$(cat /proc/sys/net/ipv4/ip_forward)
# portmap adds base nat chains on first use and never removes them: remove them at exit if
# they were not there before and hold nothing (no other CNI network uses them).
cni_chains_before=$(iptables-save -t nat 2>/dev/null | grep -c CNI-HOSTPORT)
remove_cni_chains() {
	[[ $cni_chains_before == 0 ]] || return 0
	iptables -t nat -S CNI-HOSTPORT-DNAT 2>/dev/null | grep -q '^-A' && return 0
	iptables -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
	iptables -t nat -D OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
	iptables -t nat -D POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
	local c
	for c in CNI-HOSTPORT-DNAT CNI-HOSTPORT-MASQ CNI-HOSTPORT-SETMARK; do
		iptables -t nat -F "$c"
		iptables -t nat -X "$c"
	done
}

# remove_all_pods: StopPodSandbox + RemovePodSandbox for every pod (their containers go too).
remove_all_pods() {
	local p
	for p in $(K pods 2>/dev/null | awk '{ print $1 }'); do
		K stopp "$p" || echo "stopp $p failed"
		K rmp "$p" || echo "rmp $p failed"
	done
}

containerd_pid=
registry_pid=
stop_all() {
	local p
	if [[ -n $containerd_pid ]] && kill -0 "$containerd_pid" 2>/dev/null; then
		remove_all_pods
		stop_pid "$containerd_pid"
	fi
	# Shims of ours that outlived containerd (a pod that could not be removed).
	for p in $(procs_mentioning "-address $sock" | awk '/shim/ { print $1 }'); do
		kill -KILL "$p"
	done
	stop_pid "$registry_pid"
	unmount_under "$tmp"
	ip link del "$bridge" 2>/dev/null
	remove_cgroup_parent "$cg_parent"
	remove_cni_chains
	echo "$ip_forward_was" >/proc/sys/net/ipv4/ip_forward
}
on_exit stop_all

containerd --config "$tmp/config.toml" >"$tmp/containerd.log" 2>&1 &
containerd_pid=$!
registry_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$repo/hack/image-registry.sh" "$registry_port" "$tmp/registry" >"$tmp/registry.log" 2>&1 &
registry_pid=$!

# The pause image: a static program that sleeps until SIGTERM or SIGINT and reaps children.
make_pause_tar() {
	mkdir -p "$tmp/pause"
	cat >"$tmp/pause.c" <<'EOF'
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void quit(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) ; }
int main(void) {
	struct sigaction q = { .sa_handler = quit }, r = { .sa_handler = reap, .sa_flags = SA_NOCLDSTOP };
	sigaction(SIGINT, &q, 0);
	sigaction(SIGTERM, &q, 0);
	sigaction(SIGCHLD, &r, 0);
	for (;;) pause();
}
EOF
	gcc -static -Os -s -o "$tmp/pause/pause" "$tmp/pause.c" || return 1
	tar -C "$tmp/pause" -cf "$tmp/pause.tar" ./pause
}

setup() {
	local port=$registry_port
	echo "building the CRI client"
	CARGO_TARGET_DIR="$repo/target/cri-client" cargo build --release --locked -q \
		--manifest-path "$engines_dir/cri-client/Cargo.toml" || return 1
	make_rootfs_tar
	python3 "$engines_dir/mkociarchive.py" "$rootfs_tar" "$img" "$tmp/image.tar"
	make_pause_tar
	python3 "$engines_dir/mkociarchive.py" "$tmp/pause.tar" "$pause_img" "$tmp/pause-image.tar" /pause

	wait_for 20 bash -c "echo >/dev/tcp/127.0.0.1/$port" || { echo "registry did not start"; return 1; }
	skopeo copy -q --dest-tls-verify=false "oci-archive:$tmp/image.tar" "docker://127.0.0.1:$port/smoke/busybox:latest"
	# The image's host resolves to the local registry only: no fallback to the named host.
	cat >"$tmp/certs.d/$reg_host/hosts.toml" <<EOF
server = "http://127.0.0.1:$port"
[host."http://127.0.0.1:$port"]
  capabilities = ["pull", "resolve"]
EOF

	wait_for 30 K version || { tail -20 "$tmp/containerd.log"; return 1; }
	K version
	C images import --no-unpack=false "$tmp/pause-image.tar" >/dev/null
	K pull "$img"
}
check setup setup || {
	summary
	exit 1
}

# --- helpers for the checks ---

# kcheck NAME FN: check NAME FN; whatever FN did, every pod goes when it ends (kubelet's
# cleanup) and the volumes it mounted under $tmp/vol are unmounted.
kcheck() {
	local name=$1
	shift
	check "$name" with_cleanup "$@"
}
with_cleanup() {
	trap check_cleanup EXIT
	"$@"
}
check_cleanup() {
	set +e
	remove_all_pods
	unmount_under "$tmp/vol"
}

# new_pod [runp flags]: a pod (handler under test) named after the check; prints its id.
new_pod() { K runp --name "$current_check-$BASHPID" "$@"; }
# jget JSON FILTER: jq -r.
jget() { jq -r "$2" <<<"$1"; }
# state ID: a container's state (CONTAINER_RUNNING, ...).
state() { K inspect "$1" | jq -r .status.state; }
# in_ctr ID CMD...: ExecSync.
in_ctr() { K exec-sync "$1" -- "${@:2}"; }
# pid_of ID: the host pid of a container's process; pause_pid POD: of a pod's pause.
pid_of() { K inspect "$1" | jq -r .info.pid; }
pause_pid() { K inspectp "$1" | jq -r .info.pid; }
# cgroup_dir CONTROLLER ID: a running container's cgroup directory on the host.
cgroup_dir() {
	local path
	path=$(K inspect "$2" | jq -r .info.runtimeSpec.linux.cgroupsPath)
	echo "/sys/fs/cgroup/$1$path"
}
# sleeper POD [create flags]: a started container that sleeps; prints its id.
sleeper() { K run "$1" --name "sleeper-$BASHPID" "${@:2}" -- sleep 1000; }

# --- pods ---
c_pod() {
	local pod st pid
	pod=$(new_pod)
	st=$(K inspectp "$pod")
	echo "$st" | jq -c '{state: .status.state, ip: .status.network.ip, handler: .info.runtimeHandler, pid: .info.pid}'
	expect_eq SANDBOX_READY "$(jget "$st" .status.state)" "pod state" || return 1
	expect_match "^$subnet_prefix\.[0-9]+$" "$(jget "$st" .status.network.ip)" "pod IP" || return 1
	expect_eq "$handler" "$(jget "$st" .info.runtimeHandler)" "runtime handler" || return 1
	pid=$(jget "$st" .info.pid)
	expect_eq "/pause" "$(tr '\0' ' ' <"/proc/$pid/cmdline" | xargs)" "pause command line" || return 1
	expect_match ":memory:$cg_parent/$pod$" "$(grep :memory: "/proc/$pid/cgroup")" "pause's memory cgroup" || return 1
	K stopp "$pod"
	expect_eq SANDBOX_NOTREADY "$(K inspectp "$pod" | jq -r .status.state)" "state after stop" || return 1
	wait_for 5 test ! -e "/proc/$pid" || { echo "pause $pid still running after StopPodSandbox"; return 1; }
	K rmp "$pod"
	expect_rc 125 K inspectp "$pod" 2>/dev/null
}
kcheck pod-sandbox c_pod

c_pod_ns() {
	# A pod's containers join its pause container's network, IPC and UTS namespaces (the
	# runtime gets them as namespace paths); each has a PID namespace of its own.
	local pod a b ppid ns got want
	pod=$(new_pod)
	a=$(sleeper "$pod")
	b=$(sleeper "$pod")
	ppid=$(pause_pid "$pod")
	for ns in net ipc uts; do
		want=$(readlink "/proc/$ppid/ns/$ns")
		expect_eq "$want $want" "$(in_ctr "$a" readlink /proc/self/ns/$ns) $(in_ctr "$b" readlink /proc/self/ns/$ns)" "$ns namespace of both containers" || return 1
	done
	[[ $(in_ctr "$a" readlink /proc/self/ns/pid) != "$(readlink "/proc/$ppid/ns/pid")" ]] || { echo "container shares the pause's pid namespace"; return 1; }
	expect_eq "$(jget "$(K inspectp "$pod")" .status.network.ip)" "$(in_ctr "$b" sh -c "ip -4 addr show eth0 | awk '/inet / { print \$2 }' | cut -d/ -f1")" "IP seen in the container" || return 1
	expect_eq "$current_check-" "$(in_ctr "$a" hostname | sed 's/[0-9]*$//')" "hostname (the pod's name)"
}
kcheck pod-shared-namespaces c_pod_ns

c_handler() {
	# The RuntimeClass handler picks the runtime per pod: `smoke` runs RUNTIME with its state in
	# rt-root, `runc` runs Debian's runc with its state in runc-root.
	local p1 p2 a b
	p1=$(new_pod)
	a=$(sleeper "$p1")
	p2=$(new_pod --runtime runc)
	b=$(sleeper "$p2")
	expect_eq runc "$(K inspectp "$p2" | jq -r .info.runtimeHandler)" "handler of the second pod" || return 1
	[[ -d $rt_root/k8s.io/$a && ! -e $runc_root/k8s.io/$a ]] || { echo "state of $a not (only) in $rt_root/k8s.io"; ls -R "$rt_root" "$runc_root"; return 1; }
	[[ -d $runc_root/k8s.io/$b && ! -e $rt_root/k8s.io/$b ]] || { echo "state of $b not (only) in $runc_root/k8s.io"; ls -R "$rt_root" "$runc_root"; return 1; }
}
kcheck runtime-class-handler c_handler

# --- containers ---
c_lifecycle() {
	local pod id pid st t0
	pod=$(new_pod)
	id=$(K create "$pod" --name c1 -- sh -c 'trap "exit 7" TERM; echo up; while :; do sleep 0.1; done')
	expect_eq CONTAINER_CREATED "$(state "$id")" "state after create" || return 1
	K start "$id"
	expect_eq CONTAINER_RUNNING "$(state "$id")" "state after start" || return 1
	pid=$(pid_of "$id")
	kill -0 "$pid" || { echo "container process $pid not running"; return 1; }
	K stop --timeout 10 "$id"
	st=$(K inspect "$id")
	expect_eq "CONTAINER_EXITED 7" "$(jget "$st" '"\(.status.state) \(.status.exit_code)"')" "state and exit code after stop (SIGTERM trapped)" || return 1
	[[ $(jget "$st" .status.finished_at) -gt $(jget "$st" .status.started_at) ]] || { echo "finished_at not after started_at"; return 1; }
	K rm "$id"
	expect_rc 125 K inspect "$id" 2>/dev/null || return 1
	K ps | grep -q "^$id " && { echo "$id still listed"; return 1; }
	# sleep as pid 1 ignores SIGTERM: StopContainer kills it after the timeout.
	id=$(sleeper "$pod")
	t0=$(date +%s)
	K stop --timeout 1 "$id"
	expect_eq "137" "$(K inspect "$id" | jq -r .status.exit_code)" "exit code after the stop timeout" || return 1
	(($(date +%s) - t0 < 8)) || { echo "stop took $(($(date +%s) - t0))s"; return 1; }
	K rm "$id"
	# A container that exits by itself.
	id=$(K run "$pod" --name c3 -- sh -c 'exit 3')
	expect_eq "3 Error" "$(K wait "$id")" "exit code and reason"
}
kcheck container-lifecycle c_lifecycle

c_config() {
	local pod id
	pod=$(new_pod)
	id=$(K run "$pod" --name cfg --env FOO=bar --env X=baz --workdir /var/tmp -- sleep 1000)
	expect_eq "bar baz /var/tmp" "$(in_ctr "$id" sh -c 'echo $FOO $X $(pwd)')"
}
kcheck container-env-workdir c_config

c_exec_sync() {
	local pod id out rc=0 t0 dt
	pod=$(new_pod)
	id=$(sleeper "$pod")
	out=$(K exec-sync "$id" -- sh -c 'echo out-line; echo err-line >&2; exit 3' 2>"$tmp/es.err") || rc=$?
	expect_eq 3 "$rc" "exit code" && expect_eq out-line "$out" stdout && expect_eq err-line "$(cat "$tmp/es.err")" stderr || return 1
	# A timeout that expires: the call fails after about the timeout and the command is killed.
	rc=0
	t0=$(date +%s.%N)
	K exec-sync --timeout 2 "$id" -- sleep 37 2>"$tmp/es.err" || rc=$?
	dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	cat "$tmp/es.err"
	expect_eq 125 "$rc" "exit status of the timed-out call" || return 1
	expect_match 'timeout' "$(cat "$tmp/es.err")" "error" || return 1
	awk -v d="$dt" 'BEGIN { exit !(d >= 1.8 && d < 6) }' || { echo "the call returned after ${dt}s (timeout 2s)"; return 1; }
	out=$(in_ctr "$id" ps)
	echo "$out"
	! grep -q 'sleep 37' <<<"$out" || { echo "the timed-out command still runs"; return 1; }
}
kcheck exec-sync c_exec_sync

c_exec_stream() {
	local pod id out rc=0
	pod=$(new_pod)
	id=$(sleeper "$pod")
	out=$(K exec --stdin $'typed\n' "$id" -- sh -c 'read a; echo "got-$a"; echo to-stderr >&2; exit 4' 2>"$tmp/ex.err") || rc=$?
	expect_eq 4 "$rc" "exit code" && expect_eq got-typed "$out" stdout && expect_eq to-stderr "$(cat "$tmp/ex.err")" stderr || return 1
	expect_eq "ok" "$(K exec "$id" -- echo ok)" "a plain exec" || return 1
	out=$(K exec --tty --size 25x91 "$id" -- sh -c "tty; $wait_size" | tr -d '\r')
	echo "$out"
	expect_match '^/dev/pts/[0-9]+' "$out" "tty" && expect_match '25 91' "$out" "terminal size"
}
kcheck exec-streaming c_exec_stream

c_attach() {
	local pod id out
	pod=$(new_pod)
	id=$(K run "$pod" --name att --stdin -- sh -c 'while read l; do echo "attached-$l"; done')
	out=$(K attach --stdin $'one\n' --until attached-one "$id")
	expect_eq attached-one "$out" "output after the first attach" || return 1
	# Detaching leaves the container running; a second attach reaches the same process.
	expect_eq CONTAINER_RUNNING "$(state "$id")" "state after detach" || return 1
	out=$(K attach --stdin $'two\n' --until attached-two "$id")
	expect_eq attached-two "$out" "output after the second attach"
}
kcheck attach-streaming c_attach

c_logs() {
	# kubelet's log format, one file per container: TIMESTAMP STREAM TAG LINE.
	local pod id log bad
	pod=$(new_pod)
	id=$(K run "$pod" --name logger -- sh -c 'echo out-1; echo err-1 >&2; echo out-2; echo err-2 >&2; echo out-3')
	expect_eq "0 Completed" "$(K wait "$id")" "exit" || return 1
	log=$(K inspect "$id" | jq -r .status.log_path)
	expect_eq "$CRI_LOG_DIR/$current_check-" "$(dirname "$log" | sed 's/[0-9]*$//')" "log directory" || return 1
	cat "$log"
	bad=$(grep -Ev '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]+(Z|[+-][0-9]{2}:[0-9]{2}) (stdout|stderr) F [^ ]+$' "$log" || true)
	[[ -z $bad ]] || { echo "lines not in the CRI format: $bad"; return 1; }
	expect_eq "out-1 out-2 out-3" "$(awk '$2 == "stdout" { print $4 }' "$log" | xargs)" stdout &&
		expect_eq "err-1 err-2" "$(awk '$2 == "stderr" { print $4 }' "$log" | xargs)" stderr
}
kcheck container-logs c_logs

c_stats() {
	local pod id st all
	pod=$(new_pod)
	id=$(K run "$pod" --name busy -- sh -c 'x=$(head -c 4000000 /dev/zero | tr "\0" a); while :; do :; done')
	sleep 1
	st=$(K stats "$id")
	echo "$st" | jq -c '{cpu: .cpu.usage_core_nano_seconds.value, mem: .memory.working_set_bytes.value}'
	expect_eq "$id" "$(jget "$st" .attributes.id)" "stats of" || return 1
	[[ $(jget "$st" '.cpu.usage_core_nano_seconds.value // 0') -gt 100000000 ]] || { echo "cpu usage under 0.1 s after 1 s of a busy loop"; return 1; }
	[[ $(jget "$st" '.memory.working_set_bytes.value // 0') -gt 1000000 ]] || { echo "working set under 1 MB"; return 1; }
	all=$(K stats-all)
	[[ $(jq -r --arg id "$id" '.[] | select(.attributes.id == $id) | .memory.working_set_bytes.value // 0' <<<"$all") -gt 0 ]] ||
		{ echo "ListContainerStats has no memory for $id: $all"; return 1; }
}
kcheck container-stats c_stats

c_resources() {
	local pod id mem cpu
	pod=$(new_pod)
	id=$(K run "$pod" --name res --memory 67108864 --cpu-quota 50000 --cpu-period 100000 --cpu-shares 512 -- sleep 1000)
	expect_eq "$cg_parent/$id" "$(K inspect "$id" | jq -r .info.runtimeSpec.linux.cgroupsPath)" "cgroupsPath" || return 1
	mem=$(cgroup_dir memory "$id")
	cpu=$(cgroup_dir cpu "$id")
	expect_eq "67108864 50000 100000 512" "$(cat "$mem/memory.limit_in_bytes" "$cpu/cpu.cfs_quota_us" "$cpu/cpu.cfs_period_us" "$cpu/cpu.shares" | xargs)" \
		"memory limit, cfs quota, cfs period, shares" || return 1
	# The container's process is in that cgroup.
	grep -qx "$(pid_of "$id")" "$mem/cgroup.procs" || { echo "container pid not in $mem"; return 1; }
	K update "$id" --memory 134217728 --cpu-quota 20000 --cpu-period 100000 --cpu-shares 256
	expect_eq "134217728 20000 100000 256" "$(cat "$mem/memory.limit_in_bytes" "$cpu/cpu.cfs_quota_us" "$cpu/cpu.cfs_period_us" "$cpu/cpu.shares" | xargs)" \
		"after UpdateContainerResources"
}
kcheck resources-update c_resources

c_oom() {
	# containerd learns of the OOM kill from the shim's TaskOOM event. The shim of containerd 1.6
	# starts watching the container's memory cgroup (cgroup v1) only once the runtime's `start`
	# has returned: an OOM before that is never reported, whatever the runtime (measured: 1 in 8
	# runs with runc as with skiff when the container allocates at once). So the container waits
	# a second first. The event may also come a moment after the exit: as kubelet, look again.
	local pod id got
	pod=$(new_pod)
	id=$(K run "$pod" --name oom --memory 33554432 -- sh -c 'sleep 1; x=$(tail /dev/zero)')
	got=$(K wait --timeout 30 "$id")
	echo "at exit: $got"
	for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
		[[ $got == *OOMKilled ]] && break
		sleep 0.1
		got=$(K wait "$id")
	done
	expect_eq "137 OOMKilled" "$got" "exit code and reason"
}
kcheck oom-killed c_oom

# --- security context ---
# paths_probe: whether a masked path that exists on this kernel is masked (a mount on it), whether
# /proc/sys is read-only (a mount) and refuses a write. The write is the UTS-namespaced
# hostname, rewritten with its own value: nothing changes, even where the write goes through.
for masked_path in /proc/kcore /proc/timer_list /proc/keys /proc/sched_debug; do [[ -e $masked_path ]] && break; done
paths_probe="echo masked \$(grep -c ' $masked_path ' /proc/self/mountinfo)
	echo sys \$(grep ' /proc/sys ' /proc/self/mountinfo | grep -c '[ ,]ro[ ,]')
	echo hostname-write \$( (h=\$(cat /proc/sys/kernel/hostname); echo \$h > /proc/sys/kernel/hostname) 2>/dev/null && echo ok || echo refused)"

c_user() {
	local pod id
	pod=$(new_pod)
	id=$(K run "$pod" --name u --user 1000:1001 -- sleep 1000)
	expect_eq "1000 1001" "$(in_ctr "$id" sh -c 'echo $(id -u) $(id -g)')" "uid gid of the container" &&
		expect_eq "1000 1001" "$(in_ctr "$id" sh -c 'echo $(id -u) $(id -g)')" "uid gid of an exec" &&
		expect_eq "1000" "$(stat -c %u "/proc/$(pid_of "$id")")" "owner of the process on the host"
}
kcheck security-run-as-user c_user

c_readonly() {
	local pod id
	pod=$(new_pod)
	id=$(K run "$pod" --name ro --read-only -- sleep 1000)
	expect_eq $'ro\nro-mount' "$(in_ctr "$id" sh -c 'touch /x 2>/dev/null && echo writable || echo ro; grep " / " /proc/mounts | grep -q "[ ,]ro[ ,]" && echo ro-mount')"
}
kcheck security-readonly-rootfs c_readonly

c_caps() {
	local pod id eff
	pod=$(new_pod)
	id=$(K run "$pod" --name caps --cap-add NET_ADMIN --cap-drop CHOWN -- sleep 1000)
	eff=$(in_ctr "$id" sh -c 'grep CapEff /proc/self/status | cut -f2')
	expect_eq "0 1 0 1" "$(cap_bit "$eff" 0) $(cap_bit "$eff" 12) $(cap_bit "$eff" 21) $(cap_bit "$eff" 1)" "CHOWN NET_ADMIN SYS_ADMIN DAC_OVERRIDE bits of $eff" &&
		expect_eq denied "$(in_ctr "$id" sh -c 'chown 1000 /tmp 2>/dev/null && echo allowed || echo denied')" "chown"
}
kcheck security-capabilities c_caps

c_privileged() {
	# All the capabilities of the bounding set, the host's devices, no masked or read-only
	# paths. (/sys stays read-only: the pause container mounted the pod's sysfs read-only
	# first, and a second mount of that superblock is read-only too, whatever the runtime.)
	local pod id eff bnd dev
	bnd=$(grep CapBnd /proc/self/status | cut -f2)
	for dev in loop-control kmsg fuse kvm; do [[ -e /dev/$dev ]] && break; done
	pod=$(new_pod --privileged)
	id=$(K run "$pod" --name priv --privileged -- sleep 1000)
	eff=$(in_ctr "$id" sh -c 'grep CapEff /proc/self/status | cut -f2')
	expect_eq "$bnd" "$eff" "CapEff (the host's bounding set)" || return 1
	expect_eq yes "$(in_ctr "$id" sh -c "test -e /dev/$dev && echo yes || echo no")" "host device /dev/$dev" || return 1
	expect_eq $'masked 0\nsys 0\nhostname-write ok' "$(in_ctr "$id" sh -c "$paths_probe")" "masked and read-only paths" || return 1
	# An unprivileged container of the same pod has none of it.
	id=$(sleeper "$pod")
	expect_eq no "$(in_ctr "$id" sh -c "test -e /dev/$dev && echo yes || echo no")" "/dev/$dev without privileged"
}
kcheck security-privileged c_privileged

c_seccomp() {
	# containerd's default profile blocks unshare(CLONE_NEWUSER) without CAP_SYS_ADMIN.
	local pod id probe='echo $(grep ^Seccomp: /proc/self/status | cut -f2) $(unshare -U true 2>/dev/null && echo allowed || echo blocked)'
	pod=$(new_pod)
	id=$(K run "$pod" --name sd --seccomp runtime-default -- sleep 1000)
	expect_eq "2 blocked" "$(in_ctr "$id" sh -c "$probe")" "RuntimeDefault" || return 1
	id=$(K run "$pod" --name su --seccomp unconfined -- sleep 1000)
	expect_eq "0 allowed" "$(in_ctr "$id" sh -c "$probe")" "Unconfined"
}
kcheck security-seccomp c_seccomp

c_nnp() {
	local pod id
	pod=$(new_pod)
	id=$(K run "$pod" --name nnp --no-new-privs -- sleep 1000)
	expect_eq 1 "$(in_ctr "$id" sh -c 'grep ^NoNewPrivs: /proc/self/status | cut -f2')" "with allowPrivilegeEscalation false" || return 1
	id=$(K run "$pod" --name nonnp -- sleep 1000)
	expect_eq 0 "$(in_ctr "$id" sh -c 'grep ^NoNewPrivs: /proc/self/status | cut -f2')" "without"
}
kcheck security-no-new-privs c_nnp

c_masked() {
	# kubelet's default masked and read-only paths.
	local pod id
	pod=$(new_pod)
	id=$(K run "$pod" --name m -- sleep 1000)
	expect_eq $'masked 1\nsys 1\nhostname-write refused' "$(in_ctr "$id" sh -c "$paths_probe")"
}
kcheck security-masked-readonly-paths c_masked

c_cgroup_view() {
	# A pod container sees only its own cgroups, in every hierarchy (named ones and cgroup2
	# included): /proc/self/cgroup has no hierarchy at the root, and /sys/fs/cgroup shows no
	# other cgroup (no directories under any hierarchy's view).
	local pod id got dirs
	pod=$(new_pod)
	id=$(sleeper "$pod")
	got=$(in_ctr "$id" cat /proc/self/cgroup)
	echo "$got"
	expect_eq "" "$(echo "$got" | awk -F: '$3 == "/"')" "hierarchies left at the root" || return 1
	dirs=$(in_ctr "$id" sh -c 'for d in /sys/fs/cgroup/*/; do find "$d" -mindepth 1 -maxdepth 1 -type d; done')
	expect_eq "" "$dirs" "cgroup directories in view"
}
kcheck cgroup-view c_cgroup_view

# --- namespaces and network ---
c_host_ns() {
	local pod id ns want got
	pod=$(new_pod --host-net --host-pid --host-ipc)
	id=$(sleeper "$pod")
	for ns in net pid ipc; do
		want=$(readlink "/proc/$$/ns/$ns")
		got=$(in_ctr "$id" readlink "/proc/self/ns/$ns")
		expect_eq "$want" "$got" "$ns namespace with host$ns" || return 1
	done
	expect_eq yes "$(in_ctr "$id" sh -c "test -d /proc/$$ && echo yes || echo no")" "the host's processes visible" || return 1
	# And a pod without them has its own.
	pod=$(new_pod)
	id=$(sleeper "$pod")
	for ns in net pid ipc; do
		[[ $(in_ctr "$id" readlink "/proc/self/ns/$ns") != "$(readlink "/proc/$$/ns/$ns")" ]] || { echo "$ns namespace is the host's"; return 1; }
	done
}
kcheck host-namespaces c_host_ns

c_hostport() {
	local pod id port ip
	port=$(random_port)
	pod=$(new_pod --port "$port:80")
	id=$(K run "$pod" --name web -- httpd -f -p 80 -h /www)
	ip=$(K inspectp "$pod" | jq -r .status.network.ip)
	expect_eq smoke-page "$(http_get "http://$ip:80/")" "the page from the pod's IP" || return 1
	expect_eq smoke-page "$(http_get "http://127.0.0.1:$port/")" "the page from 127.0.0.1:$port" || { iptables -t nat -S | grep -i cni; return 1; }
	K stopp "$pod"
	! iptables-save -t nat | grep -q "$ip" || { echo "nat rules for $ip left after StopPodSandbox"; return 1; }
}
kcheck hostport-portmap c_hostport

# --- mount propagation of a host directory volume ---
# shared_vol NAME: a directory under $tmp/vol that is a shared mount point (the host's / is
# private here; HostToContainer needs a shared or slave source, Bidirectional a shared one).
shared_vol() {
	local d="$tmp/vol/$1"
	mkdir -p "$d"
	mount --bind "$d" "$d"
	mount --make-rshared "$d"
	echo "$d"
}
# host_mount DIR: a tmpfs with a file `f` in it, mounted on the host at DIR.
host_mount() {
	mkdir -p "$1"
	mount -t tmpfs -o size=1m smoke-host "$1"
	echo from-host >"$1/f"
}

c_prop_none() {
	local vol pod id
	vol=$(shared_vol none)
	pod=$(new_pod)
	id=$(K run "$pod" --name pn --mount "$vol:/vol:private" -- sleep 1000)
	host_mount "$vol/sub"
	expect_eq "no" "$(in_ctr "$id" sh -c 'cat /vol/sub/f 2>/dev/null || echo no')" "a host mount made after start, inside"
}
kcheck mount-propagation-none c_prop_none

c_prop_h2c() {
	local vol pod id
	vol=$(shared_vol h2c)
	pod=$(new_pod)
	id=$(K run "$pod" --name ph --mount "$vol:/vol:rslave" -- sleep 1000)
	host_mount "$vol/sub"
	expect_eq "from-host" "$(in_ctr "$id" sh -c 'cat /vol/sub/f 2>/dev/null || echo no')" "a host mount made after start, inside"
}
kcheck mount-propagation-host-to-container c_prop_h2c

c_prop_bidi() {
	local vol pod id
	vol=$(shared_vol bidi)
	pod=$(new_pod --privileged)
	id=$(K run "$pod" --name pb --privileged --mount "$vol:/vol:rshared" -- sleep 1000)
	host_mount "$vol/sub"
	expect_eq "from-host" "$(in_ctr "$id" sh -c 'cat /vol/sub/f 2>/dev/null || echo no')" "a host mount made after start, inside" || return 1
	in_ctr "$id" sh -c 'mkdir -p /vol/c && mount -t tmpfs smoke-ctr /vol/c && echo from-ctr > /vol/c/f'
	expect_eq "from-ctr" "$(cat "$vol/c/f" 2>/dev/null || echo no)" "a mount made inside, on the host"
}
kcheck mount-propagation-bidirectional c_prop_bidi

# --- nothing left behind ---
c_leftovers() {
	local bad=0 x
	remove_all_pods
	x=$(K pods; K ps)
	[[ -z $x ]] || { echo "pods/containers: $x"; bad=1; }
	x=$(procs_mentioning "-address $sock" | grep shim || true)
	[[ -z $x ]] || { echo "shims: $x"; bad=1; }
	x=$(find "$rt_root" "$runc_root" -mindepth 2 2>/dev/null || true)
	[[ -z $x ]] || { echo "runtime state: $x"; bad=1; }
	x=$(procs_mentioning "$rt_root" || true)
	[[ -z $x ]] || { echo "runtime processes: $x"; bad=1; }
	x=$(cgroup_leftovers "$cg_parent")
	[[ -z $x ]] || { echo "cgroups: $x"; bad=1; }
	x=$(mounts_under "$tmp")
	[[ -z $x ]] || { echo "mounts: $x"; bad=1; }
	x=$(find "$tmp/state/io.containerd.grpc.v1.cri/netns" -mindepth 1 2>/dev/null || true)
	[[ -z $x ]] || { echo "network namespaces: $x"; bad=1; }
	x=$(find "$tmp/ipam" -type f ! -name lock ! -name 'last_reserved_ip*' 2>/dev/null || true)
	[[ -z $x ]] || { echo "IP addresses still allocated: $x"; bad=1; }
	x=$(iptables-save -t nat | grep -F "$subnet_prefix." || true)
	[[ -z $x ]] || { echo "nat rules: $x"; bad=1; }
	return $bad
}
check leftovers c_leftovers

summary
