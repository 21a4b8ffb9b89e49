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
P() { "$tmp/podman" "$@"; }
# run with our cgroup parent (podman has no global setting for it with cgroupfs).
PR() { P run --cgroup-parent "$cg_parent" "$@"; }

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

# --- run ---
c_exit() { expect_rc 3 PR --rm "$img" sh -c 'exit 3'; }
check run-exit-code c_exit

c_stdin() {
	local got
	got=$(printf 'hello\nworld\n' | PR --rm -i "$img" sh -c 'cat; echo done')
	expect_eq $'hello\nworld\ndone' "$got"
}
check run-stdin c_stdin

wait_size='for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do s=$(stty size 2>/dev/null); case $s in [1-9]*) echo $s; break;; esac; sleep 0.1; done'

c_tty() {
	local got
	got=$(pty_run --rows 33 --cols 101 "$tmp/podman" run --cgroup-parent "$cg_parent" --rm -it "$img" sh -c "tty; $wait_size; test -t 0 && echo tty-ok")
	echo "$got"
	expect_match '/dev/pts/[0-9]+' "$got" &&
		expect_match '33 101' "$got" &&
		expect_match 'tty-ok' "$got"
}
check run-tty c_tty

c_tty_input() {
	# Keystrokes typed into the terminal reach the container through the pty master.
	local got
	got=$(pty_run --input $'typed-line\r' --after 'prompt>' "$tmp/podman" run --cgroup-parent "$cg_parent" --rm -it "$img" sh -c 'printf "prompt>"; read x; echo "got-$x"')
	echo "$got"
	expect_match 'got-typed-line' "$got"
}
check run-tty-input c_tty_input

c_env() { expect_eq "bar baz" "$(PR --rm -e FOO=bar -e X=baz "$img" sh -c 'echo $FOO $X')"; }
check run-env c_env

c_workdir() { expect_eq /var/tmp "$(PR --rm -w /var/tmp "$img" pwd)"; }
check run-workdir c_workdir

c_user() {
	expect_eq "1000 1000 100" "$(PR --rm -u 1000:1000 --group-add 100 "$img" sh -c 'echo $(id -u) $(id -g) $(id -G | tr " " "\n" | grep -x 100)')" &&
		expect_eq "1000" "$(PR --rm -u user "$img" id -u)"
}
check run-user c_user

c_hostname() { expect_eq smokehost "$(PR --rm --hostname smokehost "$img" hostname)"; }
check run-hostname c_hostname

c_readonly() {
	local got
	got=$(PR --rm --read-only --read-only-tmpfs=false "$img" sh -c 'touch /x 2>/dev/null && echo writable || echo ro; grep " / " /proc/mounts | grep -q "[ ,]ro[ ,]" && echo ro-mount')
	expect_eq $'ro\nro-mount' "$got"
}
check run-read-only c_readonly

c_bind() {
	mkdir -p "$tmp/bind"
	echo host-data >"$tmp/bind/in"
	PR --rm -v "$tmp/bind:/data" "$img" sh -c 'cat /data/in > /data/out; echo ctr >> /data/out'
	expect_eq $'host-data\nctr' "$(cat "$tmp/bind/out")" &&
		expect_eq "ro" "$(PR --rm -v "$tmp/bind:/data:ro" "$img" sh -c 'touch /data/x 2>/dev/null && echo rw || echo ro')"
}
check run-bind-volume c_bind

c_named() {
	P volume create smoke-vol >/dev/null
	PR --rm -v smoke-vol:/vol "$img" sh -c 'echo persisted > /vol/f'
	expect_eq persisted "$(PR --rm -v smoke-vol:/vol "$img" cat /vol/f)"
	P volume rm smoke-vol >/dev/null
}
check run-named-volume c_named

c_tmpfs() {
	local got
	got=$(PR --rm --tmpfs /scratch:size=1m,mode=1777 "$img" sh -c 'grep " /scratch " /proc/mounts; echo x > /scratch/f && cat /scratch/f')
	echo "$got"
	expect_match '^tmpfs /scratch tmpfs [^ ]*size=1024k' "$got" && expect_match 'x$' "$got"
}
check run-tmpfs c_tmpfs

c_caps() {
	local eff
	eff=$(PR --rm --cap-drop CHOWN --cap-add NET_ADMIN "$img" sh -c 'grep CapEff /proc/self/status | cut -f2')
	expect_eq "0 1 0" "$(cap_bit "$eff" 0) $(cap_bit "$eff" 12) $(cap_bit "$eff" 21)" "CHOWN NET_ADMIN SYS_ADMIN bits of $eff" &&
		expect_eq denied "$(PR --rm --cap-drop CHOWN "$img" sh -c 'chown 1000 /tmp 2>/dev/null && echo allowed || echo denied')"
}
check run-cap-add-drop c_caps

c_seccomp() {
	# Podman's profile allows every syscall busybox can make without capabilities: check that
	# a filter is installed by default and none with seccomp=unconfined.
	expect_eq "2 1" "$(PR --rm "$img" sh -c 'grep -E "^Seccomp(_filters)?:" /proc/self/status | cut -f2 | xargs')" &&
		expect_eq "0 0" "$(PR --rm --security-opt seccomp=unconfined "$img" sh -c 'grep -E "^Seccomp(_filters)?:" /proc/self/status | cut -f2 | xargs')"
}
check run-seccomp-default c_seccomp

c_nnp() {
	expect_eq 1 "$(PR --rm --security-opt no-new-privileges "$img" sh -c 'grep ^NoNewPrivs: /proc/self/status | cut -f2')" &&
		expect_eq 0 "$(PR --rm "$img" sh -c 'grep ^NoNewPrivs: /proc/self/status | cut -f2')"
}
check run-no-new-privileges c_nnp

c_ulimit() { expect_eq "1024 2048 300" "$(PR --rm --ulimit nofile=1024:2048 --ulimit nproc=300:300 "$img" sh -c 'echo $(ulimit -n) $(ulimit -Hn) $(ulimit -u)')"; }
check run-ulimits c_ulimit

c_limits() {
	local got
	got=$(PR --rm -m 64m --pids-limit 50 --cpus 0.5 "$img" sh -c '
		cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max \
		    /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us | tr "\n" " "')
	expect_eq "67108864 50 50000 100000 " "$got" "memory pids cfs_quota cfs_period"
}
check run-resource-limits c_limits

c_oom() {
	local rc=0
	# (conmon 2.1.6 does not report State.OOMKilled on cgroup v1, whatever the runtime.)
	PR --rm -m 32m --memory-swap 32m "$img" sh -c 'tail /dev/zero' || rc=$?
	expect_eq 137 "$rc" "exit status"
}
check run-oom-kill c_oom

c_net_none() { expect_eq lo "$(PR --rm --network none "$img" sh -c 'ls /sys/class/net | xargs')"; }
check run-network-none c_net_none

c_net_host() {
	local want
	want=$(ls /sys/class/net | sort | xargs)
	expect_eq "$want" "$(PR --rm --network host "$img" sh -c 'ls /sys/class/net | sort | xargs')"
}
check run-network-host c_net_host

c_net_bridge() {
	local port got ifs
	port=$(random_port)
	PR -d --name "${ctr_prefix}-web" --network "$net" -p "127.0.0.1:$port:8080" "$img" httpd -f -p 8080 -h /www >/dev/null
	got=$(http_get "http://127.0.0.1:$port/index.html") || true
	ifs=$(P exec "${ctr_prefix}-web" sh -c 'ls /sys/class/net | sort | xargs')
	P rm -f -t 0 "${ctr_prefix}-web" >/dev/null
	expect_eq smoke-page "$got" "page through 127.0.0.1:$port" && expect_eq "eth0 lo" "$ifs" "interfaces"
}
check run-network-bridge-port c_net_bridge

c_pid_host() {
	expect_eq "yes" "$(PR --rm --pid host "$img" sh -c "test -d /proc/$$ && echo yes || echo no")" &&
		expect_eq "1" "$(PR --rm "$img" sh -c 'echo $$')"
}
check run-pid-host c_pid_host

c_userns() {
	local got
	mkdir -p "$tmp/uns"
	chown 200000:200000 "$tmp/uns"
	got=$(PR --rm --uidmap 0:200000:65536 --gidmap 0:200000:65536 -v "$tmp/uns:/data" "$img" sh -c 'cat /proc/self/uid_map /proc/self/gid_map | xargs; id -u; touch /data/f; ls -ln /bin/busybox | awk "{print \$3}"')
	echo "$got"
	expect_eq $'0 200000 65536 0 200000 65536\n0\n0' "$got" &&
		expect_eq "200000:200000" "$(stat -c %u:%g "$tmp/uns/f")" "owner of a file the container created"
}
check run-userns-uidmap c_userns

c_sysctl() {
	expect_eq "1 0 100" "$(PR --rm --sysctl kernel.shm_rmid_forced=1 --sysctl net.ipv4.ping_group_range='0 100' "$img" sh -c 'cat /proc/sys/kernel/shm_rmid_forced /proc/sys/net/ipv4/ping_group_range | xargs')"
}
check run-sysctl c_sysctl

c_devices() {
	local got
	got=$(PR --rm --device /dev/null:/dev/smoke-null --device /dev/fuse:/dev/smoke-fuse:r "$img" sh -c '
		test -c /dev/smoke-null && echo x > /dev/smoke-null && echo null-ok
		test -c /dev/smoke-fuse && : < /dev/smoke-fuse && echo fuse-readable
		(: > /dev/smoke-fuse) 2>/dev/null && echo fuse-writable || echo fuse-ro
		test -e /dev/fuse && echo host-fuse-visible || echo no-host-fuse')
	expect_eq $'null-ok\nfuse-readable\nfuse-ro\nno-host-fuse' "$got"
}
check run-devices c_devices

c_init() {
	local got
	got=$(PR --rm --init "$img" sh -c 'cat /proc/1/comm; echo $$')
	echo "$got"
	expect_match '^(podman-init|tini)' "$got" && expect_match $'\n[0-9]+$' "$got"
	[[ ${got##*$'\n'} != 1 ]] || { echo "sh is pid 1 despite --init"; return 1; }
}
check run-init c_init

# --- a long-running container for exec, top, pause, stats, restart ---
X=${ctr_prefix}-x
c_detached() {
	PR -d --name "$X" "$img" sh -c 'trap "exit 0" TERM; while :; do sleep 0.2; done' >/dev/null
	expect_eq running "$(P inspect -f '{{.State.Status}}' "$X")"
}
check run-detached c_detached

c_exec_exit() { expect_rc 5 P exec "$X" sh -c 'exit 5'; }
check exec-exit-code c_exec_exit

c_exec_opts() { expect_eq "1000 yes /home/user" "$(P exec -u 1000:1000 -e SMOKE=yes -w /home/user "$X" sh -c 'echo $(id -u) $SMOKE $(pwd)')"; }
check exec-user-env-cwd c_exec_opts

c_exec_stdin() { expect_eq "piped" "$(echo piped | P exec -i "$X" cat)"; }
check exec-stdin c_exec_stdin

c_exec_tty() {
	local got
	got=$(pty_run --rows 20 --cols 70 "$tmp/podman" exec -it "$X" sh -c "tty; $wait_size")
	echo "$got"
	expect_match '/dev/pts/[0-9]+' "$got" && expect_match '20 70' "$got"
}
check exec-tty c_exec_tty

c_exec_tty_input() {
	local got
	got=$(pty_run --input $'typed-line\r' --after 'prompt>' "$tmp/podman" exec -it "$X" sh -c 'printf "prompt>"; read x; echo "got-$x"')
	echo "$got"
	expect_match 'got-typed-line' "$got"
}
check exec-tty-input c_exec_tty_input

c_exec_tty_mounts() {
	# An exec with a terminal gets the pty as its stdio only: the container's mounts (its
	# /dev/console above all) stay as they were. A fresh container: no earlier exec counts.
	local before after rc=0
	PR -d --name smk-m "$img" sleep 1000 >/dev/null
	before=$(P exec smk-m cat /proc/1/mountinfo)
	pty_run "$tmp/podman" exec -it smk-m tty || rc=$?
	after=$(P exec smk-m cat /proc/1/mountinfo)
	P rm -f -t 0 smk-m >/dev/null
	[[ $before == "$after" ]] || { diff <(echo "$before") <(echo "$after"); return 1; }
	expect_eq 0 "$rc" "exit status of exec -t"
}
check exec-tty-keeps-mounts c_exec_tty_mounts

c_exec_detach() {
	P exec -d "$X" sh -c 'sleep 0.3; echo marker > /tmp/marker' >/dev/null
	wait_for 10 P exec "$X" test -f /tmp/marker
	expect_eq marker "$(P exec "$X" cat /tmp/marker)"
}
check exec-detached c_exec_detach

c_exec_error() {
	# An exec that cannot start: the runtime's error must reach the user.
	local out rc=0
	out=$(P exec "$X" /nonexistent-exec 2>&1) || rc=$?
	echo "$out"
	expect_eq 127 "$rc" "exit status" && expect_match 'nonexistent-exec' "$out"
}
check exec-error-reported c_exec_error

c_top() {
	local got
	got=$(P top "$X")
	echo "$got"
	expect_match 'while' "$got"
}
check top c_top

c_pause() {
	local rc=0
	P pause "$X" >/dev/null
	expect_eq paused "$(P inspect -f '{{.State.Status}}' "$X")"
	timeout 5 "$tmp/podman" exec "$X" true 2>/dev/null && rc=1
	P unpause "$X" >/dev/null
	expect_eq running "$(P inspect -f '{{.State.Status}}' "$X")" &&
		expect_eq ok "$(P exec "$X" echo ok)"
	[[ $rc -eq 0 ]] || { echo "exec succeeded in a paused container"; return 1; }
}
check pause-unpause c_pause

c_stats() {
	local got
	got=$(P stats --no-stream --format '{{.MemUsage}} {{.PIDS}}' "$X")
	echo "$got"
	expect_match '^[0-9.]+[kKMG]i?B / [0-9.]+[kKMGT]i?B [1-9][0-9]*$' "$got"
}
check stats c_stats

c_update() {
	# Live resource update: the engine calls the runtime's `update --resources`.
	P update -m 128m --memory-swap 256m --cpus 0.25 "$X" >/dev/null
	expect_eq "134217728 268435456 25000" "$(P exec "$X" sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes \
		/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us | xargs')" \
		"memory memsw cfs_quota"
}
check update c_update

c_restart() {
	local pid1 pid2
	pid1=$(P inspect -f '{{.State.Pid}}' "$X")
	P restart -t 5 "$X" >/dev/null
	pid2=$(P inspect -f '{{.State.Pid}}' "$X")
	expect_eq running "$(P inspect -f '{{.State.Status}}' "$X")" &&
		[[ $pid1 != "$pid2" && $pid2 -gt 0 ]] || { echo "pid $pid1 -> $pid2"; return 1; }
	expect_eq ok "$(P exec "$X" echo ok)"
}
check restart c_restart

c_stop_term() {
	local t0
	t0=$(date +%s)
	P stop -t 20 "$X" >/dev/null
	expect_eq 0 "$(P inspect -f '{{.State.ExitCode}}' "$X")" "exit code after SIGTERM"
	(($(date +%s) - t0 < 10)) || { echo "stop took $(($(date +%s) - t0))s: SIGTERM not delivered?"; return 1; }
	P rm "$X" >/dev/null
}
check stop-sigterm c_stop_term

c_stop_kill() {
	local t0 el
	# sleep as pid 1 has no SIGTERM handler: the kernel ignores it, stop must fall back to SIGKILL.
	PR -d --name "${ctr_prefix}-k" "$img" sleep 1000 >/dev/null
	t0=$(date +%s.%N)
	P stop -t 1 "${ctr_prefix}-k" >/dev/null
	el=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print (b - a >= 0.9) ? "waited" : "fast" }')
	expect_eq 137 "$(P inspect -f '{{.State.ExitCode}}' "${ctr_prefix}-k")" "exit code" &&
		expect_eq waited "$el" "stop timing"
	P rm "${ctr_prefix}-k" >/dev/null
}
check stop-sigkill-fallback c_stop_kill

c_kill_sig() {
	PR -d --name "${ctr_prefix}-s" "$img" sh -c 'trap "echo got-usr1; exit 7" USR1; echo ready; while :; do sleep 0.1; done' >/dev/null
	wait_for 10 sh -c "'$tmp/podman' logs ${ctr_prefix}-s | grep -q ready"
	P kill -s USR1 "${ctr_prefix}-s" >/dev/null
	expect_eq 7 "$(P wait "${ctr_prefix}-s")" "exit status" &&
		expect_match got-usr1 "$(P logs "${ctr_prefix}-s")"
	P rm "${ctr_prefix}-s" >/dev/null
}
check kill-signal c_kill_sig

c_logs() {
	PR --name "${ctr_prefix}-l" "$img" sh -c 'echo to-stdout; echo to-stderr >&2' >/dev/null 2>&1
	expect_eq to-stdout "$(P logs "${ctr_prefix}-l" 2>/dev/null)" "stdout" &&
		expect_eq to-stderr "$(P logs "${ctr_prefix}-l" 2>&1 >/dev/null)" "stderr"
}
check logs c_logs

c_rm() {
	P rm -f "${ctr_prefix}-l" >/dev/null 2>&1 || true
	PR -d --name "${ctr_prefix}-r" "$img" sleep 1000 >/dev/null
	P rm -f -t 0 "${ctr_prefix}-r" >/dev/null
	expect_eq "" "$(P ps -aq)" "containers left"
}
check rm c_rm

c_errors() {
	# Podman parses the runtime's whole --log file as one JSON object and maps
	# "no such file or directory" / "executable file not found" to 127.
	local out rc=0
	out=$(PR --rm "$img" /nonexistent-binary 2>&1) || rc=$?
	echo "$out"
	expect_eq 127 "$rc" "exit status" && expect_match 'nonexistent-binary' "$out"
}
check runtime-error-reported c_errors

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
