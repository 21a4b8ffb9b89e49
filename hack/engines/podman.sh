#!/usr/bin/env bash
# Podman smoke test: Debian's podman (with conmon) running containers with `--runtime RUNTIME`.
#
#   hack/engines/podman.sh RUNTIME_PATH      e.g. /usr/sbin/runc or target/release/skiff
#
# Podman runs privately: a containers.conf of its own (CONTAINERS_CONF) naming the runtime in
# runtime_supports_json (so conmon passes --log-format=json), storage root, run root, tmp dir,
# volume dir, network config dir and file locks under a temp dir, cgroups under a parent of its
# own, its own bridge network. See common.sh for the output and environment knobs.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

smoke_init podman "${1:-}"
install_engine podman conmon netavark tini busybox-static python3 || {
	echo "setup: cannot install podman" >&2
	exit 1
}

cg_parent="/skiff-smoke-podman-$tag"
net="smoke-$tag"
bridge="skp$tag"
subnet_x=$(($(printf '%d' "'${tag:0:1}") * 7 % 250 + $(printf '%d' "'${tag:1:1}") % 5))
img=localhost/smoke-busybox
ctr_prefix=smk

mkdir -p "$tmp/root" "$tmp/runroot" "$tmp/tmpdir" "$tmp/volumes" "$tmp/networks" "$tmp/locks"
export CONTAINERS_CONF="$tmp/containers.conf"
# Nothing from the host's storage.conf or registries matters: no pulls, flags name the storage.
export CONTAINERS_STORAGE_CONF="$tmp/storage.conf"
export CONTAINERS_REGISTRIES_CONF="$tmp/registries.conf"
cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
graphroot = "$tmp/root"
runroot = "$tmp/runroot"
EOF
: >"$CONTAINERS_REGISTRIES_CONF"
cat >"$CONTAINERS_CONF" <<EOF
[containers]
netns = "none"
# The VM's hard limits are below podman's defaults (engines.md).
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
init_path = "/usr/bin/tini-static"
log_driver = "k8s-file"

[network]
network_backend = "netavark"
network_config_dir = "$tmp/networks"
default_network = "$net"
default_subnet = "10.198.$subnet_x.0/24"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$tmp/events.log"
tmp_dir = "$tmp/tmpdir"
volume_path = "$tmp/volumes"
lock_type = "file"
runtime_supports_json = ["crun", "runc", "skiff", "$runtime_base"]
conmon_env_vars = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
EOF

# A podman command with every private flag, usable from pty_run and timeout too.
cat >"$tmp/podman" <<EOF
#!/bin/sh
export CONTAINERS_CONF="$CONTAINERS_CONF" CONTAINERS_STORAGE_CONF="$CONTAINERS_STORAGE_CONF" CONTAINERS_REGISTRIES_CONF="$CONTAINERS_REGISTRIES_CONF"
exec podman --root "$tmp/root" --runroot "$tmp/runroot" --tmpdir "$tmp/tmpdir" \\
	--runtime "$runtime_for_engine" --cgroup-manager cgroupfs --events-backend file \\
	--storage-driver overlay --network-config-dir "$tmp/networks" --volumepath "$tmp/volumes" "\$@"
EOF
chmod 755 "$tmp/podman"
ecli=("$tmp/podman")
P() { "${ecli[@]}" "$@"; }

ip_forward_was=$(cat /proc/sys/net/ipv4/ip_forward)
# netavark adds base iptables chains on first use and never removes them: remove them at exit
# if they were not there before and hold nothing (no other network uses them).
netavark_chains_before=$(iptables-save 2>/dev/null | grep -c NETAVARK)
remove_netavark_chains() {
	[[ $netavark_chains_before == 0 ]] || return 0
	iptables -S NETAVARK_FORWARD 2>/dev/null | grep -q '^-A' && return 0
	iptables -t nat -S NETAVARK-HOSTPORT-DNAT 2>/dev/null | grep -q '^-A' && return 0
	iptables -D FORWARD -m comment --comment "netavark firewall plugin rules" -j NETAVARK_FORWARD
	iptables -X NETAVARK_FORWARD
	iptables -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT
	iptables -t nat -D OUTPUT -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT
	iptables -t nat -D POSTROUTING -j NETAVARK-HOSTPORT-MASQ
	local c
	for c in NETAVARK-HOSTPORT-DNAT NETAVARK-HOSTPORT-MASQ NETAVARK-HOSTPORT-SETMARK; do
		iptables -t nat -F "$c"
		iptables -t nat -X "$c"
	done
}
stop_podman() {
	local ids
	ids=$(P ps -aq 2>/dev/null)
	[[ -n $ids ]] && P rm -f -t 0 $ids
	P volume prune -f
	P network rm -f "$net"
	P rmi -af
	unmount_under "$tmp"
	ip link del "$bridge" 2>/dev/null
	remove_cgroup_parent "$cg_parent"
	remove_netavark_chains
	# netavark turns on forwarding for bridge networks; put back what we found.
	echo "$ip_forward_was" >/proc/sys/net/ipv4/ip_forward
}
on_exit stop_podman

setup() {
	make_rootfs_tar
	P import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
		"$rootfs_tar" "$img" >/dev/null
	P network create --interface-name "$bridge" --subnet "10.198.$subnet_x.0/24" --disable-dns "$net" >/dev/null
	P info --format '{{.Host.OCIRuntime.Path}}' | grep -qxF "$runtime_for_engine"
}
check setup setup || {
	summary
	exit 1
}

# --- what differs from docker; the shared checks are in cli-checks.sh ---
# podman has no global cgroup parent with cgroupfs; its containers.conf sets netns "none".
run_base=(--cgroup-parent "$cg_parent")
run_isolated=()
bridge_opts=(--network "$net")
rm_now=(rm -f -t 0)
readonly_opts=(--read-only --read-only-tmpfs=false)
init_comm_re='^(podman-init|tini)'
exec_error_rc_re='^127$'
stats_format='{{.MemUsage}} {{.PIDS}}'
# (podman 4.3's update has no --pids-limit.)
update_pids=0

c_seccomp() {
	# Podman's profile allows every syscall busybox can make without capabilities: check that
	# a filter is installed by default and none with seccomp=unconfined.
	expect_eq "2 1" "$(R --rm "$img" sh -c 'grep -E "^Seccomp(_filters)?:" /proc/self/status | cut -f2 | xargs')" &&
		expect_eq "0 0" "$(R --rm --security-opt seccomp=unconfined "$img" sh -c 'grep -E "^Seccomp(_filters)?:" /proc/self/status | cut -f2 | xargs')"
}

c_oom() {
	local rc=0
	# (conmon 2.1.6 does not report State.OOMKilled on cgroup v1, whatever the runtime.)
	R --rm -m 32m --memory-swap 32m "$img" sh -c 'tail /dev/zero' || rc=$?
	expect_eq 137 "$rc" "exit status"
}

c_userns() {
	local got
	mkdir -p "$tmp/uns"
	chown 200000:200000 "$tmp/uns"
	got=$(R --rm --uidmap 0:200000:65536 --gidmap 0:200000:65536 -v "$tmp/uns:/data" "$img" sh -c 'cat /proc/self/uid_map /proc/self/gid_map | xargs; id -u; touch /data/f; ls -ln /bin/busybox | awk "{print \$3}"')
	echo "$got"
	expect_eq $'0 200000 65536 0 200000 65536\n0\n0' "$got" &&
		expect_eq "200000:200000" "$(stat -c %u:%g "$tmp/uns/f")" "owner of a file the container created"
}

source "$engines_dir/cli-checks.sh"

c_leftovers() {
	local bad=0 x=
	if [[ -n ${SMOKE_ONLY:-} ]]; then
		x=$(P ps -aq)
		[[ -z $x ]] || P rm -f -t 0 $x >/dev/null
	fi
	x=$(P ps -aq)
	[[ -z $x ]] || { echo "containers: $x"; bad=1; }
	x=$(procs_mentioning "$tmp/" | grep -Ev "^[0-9]+ (bash|python3) " || true)
	[[ -z $x ]] || { echo "processes: $x"; bad=1; }
	# As root, podman passes no --root: the runtime keeps its state in its default root
	# (/run/<name>). Look there for any container this run created (ids from the events log).
	local id
	x=
	for id in $(grep -o '[0-9a-f]\{64\}' "$tmp/events.log" 2>/dev/null | sort -u); do
		[[ -e /run/$runtime_base/$id ]] && x+=" /run/$runtime_base/$id"
	done
	[[ -z $x ]] || { echo "runtime state: $x"; bad=1; }
	# podman's own cgroup for conmon is not the runtime's.
	x=$(cgroup_leftovers "$cg_parent" | grep -v '/conmon$' || true)
	[[ -z $x ]] || { echo "cgroups: $x"; bad=1; }
	x=$(mounts_under "$tmp" | grep -Evx "$tmp/root/overlay|$tmp/runroot/overlay|$tmp/root/overlay-containers/[^/]+/userdata/shm" || true)
	[[ -z $x ]] || { echo "mounts: $x"; bad=1; }
	x=$(procs_running "$runtime")
	[[ -z $x ]] || { echo "runtime processes: $x"; bad=1; }
	return $bad
}
check leftovers c_leftovers

summary
