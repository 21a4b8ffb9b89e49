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

D() { /usr/bin/docker -H "unix://$tmp/docker.sock" "$@"; }

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

# --- run ---
c_exit() { expect_rc 3 D run --rm --network none "$img" sh -c 'exit 3'; }
check run-exit-code c_exit

c_stdin() {
	local got
	got=$(printf 'hello\nworld\n' | D run --rm -i --network none "$img" sh -c 'cat; echo done')
	expect_eq $'hello\nworld\ndone' "$got"
}
check run-stdin c_stdin

c_tty() {
	local got
	got=$(pty_run --rows 33 --cols 101 /usr/bin/docker -H "unix://$tmp/docker.sock" run --rm -it \
		--network none "$img" sh -c 'tty; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do s=$(stty size 2>/dev/null); case $s in [1-9]*) echo $s; break;; esac; sleep 0.1; done; test -t 0 && echo tty-ok')
	echo "$got"
	expect_match '/dev/pts/[0-9]+' "$got" &&
		expect_match '33 101' "$got" &&
		expect_match 'tty-ok' "$got"
}
check run-tty c_tty

c_tty_input() {
	# Keystrokes typed into the terminal reach the container through the pty master.
	local got
	got=$(pty_run --input $'typed-line\r' --after 'prompt>' /usr/bin/docker -H "unix://$tmp/docker.sock" run --rm -it --network none "$img" sh -c 'printf "prompt>"; read x; echo "got-$x"')
	echo "$got"
	expect_match 'got-typed-line' "$got"
}
check run-tty-input c_tty_input

c_env() { expect_eq "bar baz" "$(D run --rm --network none -e FOO=bar -e X=baz "$img" sh -c 'echo $FOO $X')"; }
check run-env c_env

c_workdir() { expect_eq /var/tmp "$(D run --rm --network none -w /var/tmp "$img" pwd)"; }
check run-workdir c_workdir

c_user() {
	expect_eq "1000 1000 100" "$(D run --rm --network none -u 1000:1000 --group-add 100 "$img" sh -c 'echo $(id -u) $(id -g) $(id -G | tr " " "\n" | grep -x 100)')" &&
		expect_eq "1000" "$(D run --rm --network none -u user "$img" id -u)"
}
check run-user c_user

c_hostname() { expect_eq smokehost "$(D run --rm --network none --hostname smokehost "$img" hostname)"; }
check run-hostname c_hostname

c_readonly() {
	local got
	got=$(D run --rm --network none --read-only "$img" sh -c 'touch /x 2>/dev/null && echo writable || echo ro; grep " / " /proc/mounts | grep -q "[ ,]ro[ ,]" && echo ro-mount')
	expect_eq $'ro\nro-mount' "$got"
}
check run-read-only c_readonly

c_bind() {
	mkdir -p "$tmp/bind"
	echo host-data >"$tmp/bind/in"
	D run --rm --network none -v "$tmp/bind:/data" "$img" sh -c 'cat /data/in > /data/out; echo ctr >> /data/out'
	expect_eq $'host-data\nctr' "$(cat "$tmp/bind/out")" &&
		expect_eq "ro" "$(D run --rm --network none -v "$tmp/bind:/data:ro" "$img" sh -c 'touch /data/x 2>/dev/null && echo rw || echo ro')"
}
check run-bind-volume c_bind

c_named() {
	D volume create smoke-vol >/dev/null
	D run --rm --network none -v smoke-vol:/vol "$img" sh -c 'echo persisted > /vol/f'
	expect_eq persisted "$(D run --rm --network none -v smoke-vol:/vol "$img" cat /vol/f)"
	D volume rm smoke-vol >/dev/null
}
check run-named-volume c_named

c_tmpfs() {
	local got
	got=$(D run --rm --network none --tmpfs /scratch:size=1m,mode=1777 "$img" sh -c 'grep " /scratch " /proc/mounts; echo x > /scratch/f && cat /scratch/f')
	echo "$got"
	expect_match '^tmpfs /scratch tmpfs [^ ]*size=1024k' "$got" && expect_match 'x$' "$got"
}
check run-tmpfs c_tmpfs

c_caps() {
	local eff
	# CAP_CHOWN (0) dropped, CAP_NET_ADMIN (12) added, CAP_SYS_ADMIN (21) absent by default.
	eff=$(D run --rm --network none --cap-drop CHOWN --cap-add NET_ADMIN "$img" sh -c 'grep CapEff /proc/self/status | cut -f2')
	expect_eq "0 1 0" "$(cap_bit "$eff" 0) $(cap_bit "$eff" 12) $(cap_bit "$eff" 21)" "CHOWN NET_ADMIN SYS_ADMIN bits of $eff" &&
		expect_eq denied "$(D run --rm --network none --cap-drop CHOWN "$img" sh -c 'chown 1000 /tmp 2>/dev/null && echo allowed || echo denied')"
}
check run-cap-add-drop c_caps

c_seccomp() {
	# Docker's default profile filters unshare(CLONE_NEWUSER) without CAP_SYS_ADMIN.
	expect_eq "2 blocked" "$(D run --rm --network none "$img" sh -c 'echo $(grep ^Seccomp: /proc/self/status | cut -f2) $(unshare -U true 2>/dev/null && echo allowed || echo blocked)')" &&
		expect_eq "0 allowed" "$(D run --rm --network none --security-opt seccomp=unconfined "$img" sh -c 'echo $(grep ^Seccomp: /proc/self/status | cut -f2) $(unshare -U true 2>/dev/null && echo allowed || echo blocked)')"
}
check run-seccomp-default c_seccomp

c_nnp() {
	expect_eq 1 "$(D run --rm --network none --security-opt no-new-privileges "$img" sh -c 'grep ^NoNewPrivs: /proc/self/status | cut -f2')" &&
		expect_eq 0 "$(D run --rm --network none "$img" sh -c 'grep ^NoNewPrivs: /proc/self/status | cut -f2')"
}
check run-no-new-privileges c_nnp

c_ulimit() { expect_eq "1024 2048 300" "$(D run --rm --network none --ulimit nofile=1024:2048 --ulimit nproc=300:300 "$img" sh -c 'echo $(ulimit -n) $(ulimit -Hn) $(ulimit -u)')"; }
check run-ulimits c_ulimit

c_limits() {
	local got
	got=$(D run --rm --network none -m 64m --pids-limit 50 --cpus 0.5 "$img" sh -c '
		cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max \
		    /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us | tr "\n" " "')
	expect_eq "67108864 50 50000 100000 " "$got" "memory pids cfs_quota cfs_period"
}
check run-resource-limits c_limits

c_oom() {
	local rc=0
	D run --name "${ctr_prefix}-oom" --network none -m 32m --memory-swap 32m "$img" sh -c 'tail /dev/zero' || rc=$?
	expect_eq 137 "$rc" "exit status" &&
		expect_eq true "$(D inspect -f '{{.State.OOMKilled}}' "${ctr_prefix}-oom")" "State.OOMKilled"
	D rm -f "${ctr_prefix}-oom" >/dev/null
}
check run-oom-kill c_oom

c_net_none() { expect_eq lo "$(D run --rm --network none "$img" sh -c 'ls /sys/class/net | tr "\n" " " | xargs')"; }
check run-network-none c_net_none

c_net_host() {
	local want
	want=$(ls /sys/class/net | sort | xargs)
	expect_eq "$want" "$(D run --rm --network host "$img" sh -c 'ls /sys/class/net | sort | xargs')"
}
check run-network-host c_net_host

c_net_bridge() {
	local port
	port=$(random_port)
	D run -d --name "${ctr_prefix}-web" -p "127.0.0.1:$port:8080" "$img" httpd -f -p 8080 -h /www >/dev/null
	local got
	got=$(http_get "http://127.0.0.1:$port/index.html") || true
	local ifs
	ifs=$(D exec "${ctr_prefix}-web" sh -c 'ls /sys/class/net | sort | xargs')
	D rm -f "${ctr_prefix}-web" >/dev/null
	expect_eq smoke-page "$got" "page through 127.0.0.1:$port" && expect_eq "eth0 lo" "$ifs" "interfaces"
}
check run-network-bridge-port c_net_bridge

c_pid_host() {
	expect_eq "yes" "$(D run --rm --network none --pid host "$img" sh -c "test -d /proc/$$ && echo yes || echo no")" &&
		expect_eq "1" "$(D run --rm --network none "$img" sh -c 'echo $$')"
}
check run-pid-host c_pid_host

skip run-userns-uidmap "docker has only daemon-wide --userns-remap"

c_sysctl() {
	expect_eq "1 0 100" "$(D run --rm --network none --sysctl kernel.shm_rmid_forced=1 --sysctl net.ipv4.ping_group_range='0 100' "$img" sh -c 'cat /proc/sys/kernel/shm_rmid_forced /proc/sys/net/ipv4/ping_group_range | xargs')"
}
check run-sysctl c_sysctl

c_devices() {
	local got
	got=$(D run --rm --network none --device /dev/null:/dev/smoke-null --device /dev/fuse:/dev/smoke-fuse:r "$img" sh -c '
		test -c /dev/smoke-null && echo x > /dev/smoke-null && echo null-ok
		test -c /dev/smoke-fuse && : < /dev/smoke-fuse && echo fuse-readable
		(: > /dev/smoke-fuse) 2>/dev/null && echo fuse-writable || echo fuse-ro
		test -e /dev/fuse && echo host-fuse-visible || echo no-host-fuse')
	expect_eq $'null-ok\nfuse-readable\nfuse-ro\nno-host-fuse' "$got"
}
check run-devices c_devices

c_init() {
	local got
	got=$(D run --rm --network none --init "$img" sh -c 'cat /proc/1/comm; echo $$')
	echo "$got"
	expect_match '^docker-init' "$got" && expect_match $'\n[0-9]+$' "$got"
	[[ ${got##*$'\n'} != 1 ]] || { echo "sh is pid 1 despite --init"; return 1; }
}
check run-init c_init

# --- a long-running container for exec, top, pause, stats, restart ---
X=${ctr_prefix}-x
c_detached() {
	D run -d --name "$X" --network none "$img" sh -c 'trap "exit 0" TERM; while :; do sleep 0.2; done' >/dev/null
	wait_for 10 test "$(D inspect -f '{{.State.Status}}' "$X")" = running
	expect_eq running "$(D inspect -f '{{.State.Status}}' "$X")"
}
check run-detached c_detached

c_exec_exit() { expect_rc 5 D exec "$X" sh -c 'exit 5'; }
check exec-exit-code c_exec_exit

c_exec_opts() { expect_eq "1000 yes /home/user" "$(D exec -u 1000:1000 -e SMOKE=yes -w /home/user "$X" sh -c 'echo $(id -u) $SMOKE $(pwd)')"; }
check exec-user-env-cwd c_exec_opts

c_exec_stdin() { expect_eq "piped" "$(echo piped | D exec -i "$X" cat)"; }
check exec-stdin c_exec_stdin

c_exec_tty() {
	local got
	got=$(pty_run --rows 20 --cols 70 /usr/bin/docker -H "unix://$tmp/docker.sock" exec -it "$X" sh -c 'tty; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do s=$(stty size 2>/dev/null); case $s in [1-9]*) echo $s; break;; esac; sleep 0.1; done')
	echo "$got"
	expect_match '/dev/pts/[0-9]+' "$got" && expect_match '20 70' "$got"
}
check exec-tty c_exec_tty

c_exec_tty_input() {
	local got
	got=$(pty_run --input $'typed-line\r' --after 'prompt>' /usr/bin/docker -H "unix://$tmp/docker.sock" exec -it "$X" sh -c 'printf "prompt>"; read x; echo "got-$x"')
	echo "$got"
	expect_match 'got-typed-line' "$got"
}
check exec-tty-input c_exec_tty_input

c_exec_tty_mounts() {
	# An exec with a terminal gets the pty as its stdio only: the container's mounts (its
	# /dev/console above all) stay as they were. A fresh container: no earlier exec counts.
	local before after rc=0
	D run -d --name smk-m --network none "$img" sleep 1000 >/dev/null
	before=$(D exec smk-m cat /proc/1/mountinfo)
	pty_run /usr/bin/docker -H "unix://$tmp/docker.sock" exec -it smk-m tty || rc=$?
	after=$(D exec smk-m cat /proc/1/mountinfo)
	D rm -f smk-m >/dev/null
	[[ $before == "$after" ]] || { diff <(echo "$before") <(echo "$after"); return 1; }
	expect_eq 0 "$rc" "exit status of exec -t"
}
check exec-tty-keeps-mounts c_exec_tty_mounts

c_exec_detach() {
	D exec -d "$X" sh -c 'sleep 0.3; echo marker > /tmp/marker'
	wait_for 10 D exec "$X" test -f /tmp/marker
	expect_eq marker "$(D exec "$X" cat /tmp/marker)"
}
check exec-detached c_exec_detach

c_exec_error() {
	# An exec that cannot start: the runtime's error must reach the user.
	local out rc=0
	out=$(D exec "$X" /nonexistent-exec 2>&1) || rc=$?
	echo "$out"
	# docker 20.10 reports any exec start failure as 126.
	expect_match '^12[67]$' "$rc" "exit status" && expect_match 'nonexistent-exec' "$out"
}
check exec-error-reported c_exec_error

c_top() {
	local got
	got=$(D top "$X")
	echo "$got"
	expect_match 'while' "$got"
}
check top c_top

c_pause() {
	D pause "$X" >/dev/null
	expect_eq paused "$(D inspect -f '{{.State.Status}}' "$X")"
	local rc=0
	timeout 5 /usr/bin/docker -H "unix://$tmp/docker.sock" exec "$X" true 2>/dev/null && rc=1
	D unpause "$X" >/dev/null
	expect_eq running "$(D inspect -f '{{.State.Status}}' "$X")" &&
		expect_eq ok "$(D exec "$X" echo ok)"
	[[ $rc -eq 0 ]] || { echo "exec succeeded in a paused container"; return 1; }
}
check pause-unpause c_pause

c_stats() {
	local got
	got=$(D stats --no-stream --format '{{.MemUsage}} {{.PIDs}}' "$X")
	echo "$got"
	expect_match '^[0-9.]+[KMG]i?B / [0-9.]+[KMGT]i?B [1-9][0-9]*$' "$got"
}
check stats c_stats

c_update() {
	# Live resource update: the engine calls the runtime's `update --resources`.
	D update -m 128m --memory-swap 256m --cpus 0.25 --pids-limit 77 "$X" >/dev/null
	expect_eq "134217728 268435456 25000 77" "$(D exec "$X" sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes \
		/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/pids/pids.max | xargs')" \
		"memory memsw cfs_quota pids"
}
check update c_update

c_restart() {
	local pid1 pid2
	pid1=$(D inspect -f '{{.State.Pid}}' "$X")
	D restart -t 5 "$X" >/dev/null
	pid2=$(D inspect -f '{{.State.Pid}}' "$X")
	expect_eq running "$(D inspect -f '{{.State.Status}}' "$X")" &&
		[[ $pid1 != "$pid2" && $pid2 -gt 0 ]] || { echo "pid $pid1 -> $pid2"; return 1; }
	expect_eq ok "$(D exec "$X" echo ok)"
}
check restart c_restart

c_stop_term() {
	local t0 rc
	t0=$(date +%s)
	D stop -t 20 "$X" >/dev/null
	expect_eq 0 "$(D inspect -f '{{.State.ExitCode}}' "$X")" "exit code after SIGTERM"
	(($(date +%s) - t0 < 10)) || { echo "stop took $(($(date +%s) - t0))s: SIGTERM not delivered?"; return 1; }
	D rm "$X" >/dev/null
}
check stop-sigterm c_stop_term

c_stop_kill() {
	local t0 el
	# sh as pid 1 without a TERM trap ignores SIGTERM: stop must fall back to SIGKILL.
	D run -d --name "${ctr_prefix}-k" --network none "$img" sleep 1000 >/dev/null
	t0=$(date +%s.%N)
	D stop -t 1 "${ctr_prefix}-k" >/dev/null
	el=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print (b - a >= 0.9) ? "waited" : "fast" }')
	expect_eq 137 "$(D inspect -f '{{.State.ExitCode}}' "${ctr_prefix}-k")" "exit code" &&
		expect_eq waited "$el" "stop timing"
	D rm "${ctr_prefix}-k" >/dev/null
}
check stop-sigkill-fallback c_stop_kill

c_kill_sig() {
	D run -d --name "${ctr_prefix}-s" --network none "$img" sh -c 'trap "echo got-usr1; exit 7" USR1; echo ready; while :; do sleep 0.1; done' >/dev/null
	wait_for 10 sh -c "/usr/bin/docker -H unix://$tmp/docker.sock logs ${ctr_prefix}-s | grep -q ready"
	D kill -s USR1 "${ctr_prefix}-s" >/dev/null
	expect_eq 7 "$(D wait "${ctr_prefix}-s")" "exit status" &&
		expect_match got-usr1 "$(D logs "${ctr_prefix}-s")"
	D rm "${ctr_prefix}-s" >/dev/null
}
check kill-signal c_kill_sig

c_logs() {
	D run --name "${ctr_prefix}-l" --network none "$img" sh -c 'echo to-stdout; echo to-stderr >&2' >/dev/null 2>&1
	expect_eq to-stdout "$(D logs "${ctr_prefix}-l" 2>/dev/null)" "stdout" &&
		expect_eq to-stderr "$(D logs "${ctr_prefix}-l" 2>&1 >/dev/null)" "stderr"
}
check logs c_logs

c_rm() {
	D rm "${ctr_prefix}-l" >/dev/null
	D run -d --name "${ctr_prefix}-r" --network none "$img" sleep 1000 >/dev/null
	D rm -f "${ctr_prefix}-r" >/dev/null
	expect_eq "" "$(D ps -aq)" "containers left"
}
check rm c_rm

c_errors() {
	# A runtime error must reach the user (through the runtime's --log file), not
	# "unable to retrieve OCI runtime error".
	local out rc=0
	out=$(D run --rm --network none "$img" /nonexistent-binary 2>&1) || rc=$?
	echo "$out"
	expect_eq 127 "$rc" "exit status" &&
		expect_match 'nonexistent-binary' "$out" &&
		[[ $out != *"unable to retrieve OCI runtime error"* ]]
}
check runtime-error-reported c_errors

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
