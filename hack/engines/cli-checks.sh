# The checks docker.sh and podman.sh share (sourced by both after their setup check): the two
# CLIs take the same `run`, `exec`, `inspect`, ... flags, so one text serves both. What differs
# is set by the engine script before sourcing this file:
#
#   ecli=(...)            the engine's command with its private flags (also for pty_run, timeout)
#   run_base=(...)        flags every `run` needs (podman: --cgroup-parent)
#   run_isolated=(...)    flags for a run without a network (docker: --network none)
#   bridge_opts=(...)     flags for a run on the engine's bridge network
#   rm_now=(...)          force-remove without the stop timeout
#   readonly_opts=(...)   flags for a read-only rootfs with nothing writable added
#   init_comm_re          what /proc/1/comm of a --init container looks like
#   exec_error_rc_re      the exit status of an exec whose binary does not exist
#   stats_format          `stats --format` for memory usage and pid count
#   update_pids=0|1       whether `update --pids-limit` exists
#   userns_skip           why run-userns-uidmap is skipped, unless the script defines c_userns
#   c_seccomp, c_oom      the checks whose expectations are the engine's own
#
# After this file the script runs its own leftovers check and the summary.

E() { "${ecli[@]}" "$@"; }
# run with the flags every container of this script gets (Rn), and no network (R).
Rn() { E run "${run_base[@]}" "$@"; }
R() { Rn "${run_isolated[@]}" "$@"; }

# --- run ---
c_exit() { expect_rc 3 R --rm "$img" sh -c 'exit 3'; }
check run-exit-code c_exit

c_stdin() {
	local got
	got=$(printf 'hello\nworld\n' | R --rm -i "$img" sh -c 'cat; echo done')
	expect_eq $'hello\nworld\ndone' "$got"
}
check run-stdin c_stdin

c_tty() {
	local got
	got=$(pty_run --rows 33 --cols 101 "${ecli[@]}" run "${run_base[@]}" "${run_isolated[@]}" --rm -it "$img" \
		sh -c "tty; $wait_size; test -t 0 && echo tty-ok")
	echo "$got"
	expect_match '/dev/pts/[0-9]+' "$got" &&
		expect_match '33 101' "$got" &&
		expect_match 'tty-ok' "$got"
}
check run-tty c_tty

c_tty_input() {
	# Keystrokes typed into the terminal reach the container through the pty master.
	local got
	got=$(pty_run --input $'typed-line\r' --after 'prompt>' "${ecli[@]}" run "${run_base[@]}" "${run_isolated[@]}" \
		--rm -it "$img" sh -c 'printf "prompt>"; read x; echo "got-$x"')
	echo "$got"
	expect_match 'got-typed-line' "$got"
}
check run-tty-input c_tty_input

c_env() { expect_eq "bar baz" "$(R --rm -e FOO=bar -e X=baz "$img" sh -c 'echo $FOO $X')"; }
check run-env c_env

c_workdir() { expect_eq /var/tmp "$(R --rm -w /var/tmp "$img" pwd)"; }
check run-workdir c_workdir

c_user() {
	expect_eq "1000 1000 100" "$(R --rm -u 1000:1000 --group-add 100 "$img" sh -c 'echo $(id -u) $(id -g) $(id -G | tr " " "\n" | grep -x 100)')" &&
		expect_eq "1000" "$(R --rm -u user "$img" id -u)"
}
check run-user c_user

c_hostname() { expect_eq smokehost "$(R --rm --hostname smokehost "$img" hostname)"; }
check run-hostname c_hostname

c_readonly() {
	local got
	got=$(R --rm "${readonly_opts[@]}" "$img" sh -c 'touch /x 2>/dev/null && echo writable || echo ro; grep " / " /proc/mounts | grep -q "[ ,]ro[ ,]" && echo ro-mount')
	expect_eq $'ro\nro-mount' "$got"
}
check run-read-only c_readonly

c_bind() {
	mkdir -p "$tmp/bind"
	echo host-data >"$tmp/bind/in"
	R --rm -v "$tmp/bind:/data" "$img" sh -c 'cat /data/in > /data/out; echo ctr >> /data/out'
	expect_eq $'host-data\nctr' "$(cat "$tmp/bind/out")" &&
		expect_eq "ro" "$(R --rm -v "$tmp/bind:/data:ro" "$img" sh -c 'touch /data/x 2>/dev/null && echo rw || echo ro')"
}
check run-bind-volume c_bind

c_named() {
	E volume create smoke-vol >/dev/null
	R --rm -v smoke-vol:/vol "$img" sh -c 'echo persisted > /vol/f'
	expect_eq persisted "$(R --rm -v smoke-vol:/vol "$img" cat /vol/f)"
	E volume rm smoke-vol >/dev/null
}
check run-named-volume c_named

c_tmpfs() {
	local got
	got=$(R --rm --tmpfs /scratch:size=1m,mode=1777 "$img" sh -c 'grep " /scratch " /proc/mounts; echo x > /scratch/f && cat /scratch/f')
	echo "$got"
	expect_match '^tmpfs /scratch tmpfs [^ ]*size=1024k' "$got" && expect_match 'x$' "$got"
}
check run-tmpfs c_tmpfs

c_caps() {
	local eff
	# CAP_CHOWN (0) dropped, CAP_NET_ADMIN (12) added, CAP_SYS_ADMIN (21) absent by default.
	eff=$(R --rm --cap-drop CHOWN --cap-add NET_ADMIN "$img" sh -c 'grep CapEff /proc/self/status | cut -f2')
	expect_eq "0 1 0" "$(cap_bit "$eff" 0) $(cap_bit "$eff" 12) $(cap_bit "$eff" 21)" "CHOWN NET_ADMIN SYS_ADMIN bits of $eff" &&
		expect_eq denied "$(R --rm --cap-drop CHOWN "$img" sh -c 'chown 1000 /tmp 2>/dev/null && echo allowed || echo denied')"
}
check run-cap-add-drop c_caps

check run-seccomp-default c_seccomp

c_nnp() {
	expect_eq 1 "$(R --rm --security-opt no-new-privileges "$img" sh -c 'grep ^NoNewPrivs: /proc/self/status | cut -f2')" &&
		expect_eq 0 "$(R --rm "$img" sh -c 'grep ^NoNewPrivs: /proc/self/status | cut -f2')"
}
check run-no-new-privileges c_nnp

c_ulimit() { expect_eq "1024 2048 300" "$(R --rm --ulimit nofile=1024:2048 --ulimit nproc=300:300 "$img" sh -c 'echo $(ulimit -n) $(ulimit -Hn) $(ulimit -u)')"; }
check run-ulimits c_ulimit

c_limits() {
	local got
	got=$(R --rm -m 64m --pids-limit 50 --cpus 0.5 "$img" sh -c '
		cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max \
		    /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us | tr "\n" " "')
	expect_eq "67108864 50 50000 100000 " "$got" "memory pids cfs_quota cfs_period"
}
check run-resource-limits c_limits

check run-oom-kill c_oom

c_net_none() { expect_eq lo "$(Rn --rm --network none "$img" sh -c 'ls /sys/class/net | xargs')"; }
check run-network-none c_net_none

c_net_host() {
	# The host's network namespace itself (its interface list can change meanwhile: other
	# containers' veths come and go).
	local want
	want=$(readlink /proc/self/ns/net)
	expect_eq "$want" "$(Rn --rm --network host "$img" sh -c 'readlink /proc/self/ns/net')"
}
check run-network-host c_net_host

c_net_bridge() {
	local port got ifs
	port=$(random_port)
	Rn "${bridge_opts[@]}" -d --name "${ctr_prefix}-web" -p "127.0.0.1:$port:8080" \
		"$img" httpd -f -p 8080 -h /www >/dev/null
	got=$(http_get "http://127.0.0.1:$port/index.html") || true
	ifs=$(E exec "${ctr_prefix}-web" sh -c 'ls /sys/class/net | sort | xargs')
	E "${rm_now[@]}" "${ctr_prefix}-web" >/dev/null
	expect_eq smoke-page "$got" "page through 127.0.0.1:$port" && expect_eq "eth0 lo" "$ifs" "interfaces"
}
check run-network-bridge-port c_net_bridge

c_pid_host() {
	expect_eq "yes" "$(R --rm --pid host "$img" sh -c "test -d /proc/$$ && echo yes || echo no")" &&
		expect_eq "1" "$(R --rm "$img" sh -c 'echo $$')"
}
check run-pid-host c_pid_host

if declare -F c_userns >/dev/null; then
	check run-userns-uidmap c_userns
else
	skip run-userns-uidmap "$userns_skip"
fi

c_sysctl() {
	expect_eq "1 0 100" "$(R --rm --sysctl kernel.shm_rmid_forced=1 --sysctl net.ipv4.ping_group_range='0 100' "$img" sh -c 'cat /proc/sys/kernel/shm_rmid_forced /proc/sys/net/ipv4/ping_group_range | xargs')"
}
check run-sysctl c_sysctl

c_devices() {
	local got
	got=$(R --rm --device /dev/null:/dev/smoke-null --device /dev/fuse:/dev/smoke-fuse:r "$img" sh -c '
		test -c /dev/smoke-null && echo x > /dev/smoke-null && echo null-ok
		test -c /dev/smoke-fuse && : < /dev/smoke-fuse && echo fuse-readable
		(: > /dev/smoke-fuse) 2>/dev/null && echo fuse-writable || echo fuse-ro
		test -e /dev/fuse && echo host-fuse-visible || echo no-host-fuse')
	expect_eq $'null-ok\nfuse-readable\nfuse-ro\nno-host-fuse' "$got"
}
check run-devices c_devices

c_init() {
	local got
	got=$(R --rm --init "$img" sh -c 'cat /proc/1/comm; echo $$')
	echo "$got"
	expect_match "$init_comm_re" "$got" && expect_match $'\n[0-9]+$' "$got" || return 1
	[[ ${got##*$'\n'} != 1 ]] || { echo "sh is pid 1 despite --init"; return 1; }
}
check run-init c_init

# --- a long-running container for exec, top, pause, stats, restart ---
X=${ctr_prefix}-x
state_of() { E inspect -f '{{.State.Status}}' "$1"; }
is_running() { [[ $(state_of "$1") == running ]]; }
c_detached() {
	R -d --name "$X" "$img" sh -c 'trap "exit 0" TERM; while :; do sleep 0.2; done' >/dev/null
	wait_for 10 is_running "$X"
	expect_eq running "$(state_of "$X")"
}
check run-detached c_detached

c_exec_exit() { expect_rc 5 E exec "$X" sh -c 'exit 5'; }
check exec-exit-code c_exec_exit

c_exec_opts() { expect_eq "1000 yes /home/user" "$(E exec -u 1000:1000 -e SMOKE=yes -w /home/user "$X" sh -c 'echo $(id -u) $SMOKE $(pwd)')"; }
check exec-user-env-cwd c_exec_opts

c_exec_stdin() { expect_eq "piped" "$(echo piped | E exec -i "$X" cat)"; }
check exec-stdin c_exec_stdin

c_exec_tty() {
	local got
	got=$(pty_run --rows 20 --cols 70 "${ecli[@]}" exec -it "$X" sh -c "tty; $wait_size")
	echo "$got"
	expect_match '/dev/pts/[0-9]+' "$got" && expect_match '20 70' "$got"
}
check exec-tty c_exec_tty

c_exec_tty_input() {
	local got
	got=$(pty_run --input $'typed-line\r' --after 'prompt>' "${ecli[@]}" exec -it "$X" sh -c 'printf "prompt>"; read x; echo "got-$x"')
	echo "$got"
	expect_match 'got-typed-line' "$got"
}
check exec-tty-input c_exec_tty_input

c_exec_tty_mounts() {
	# An exec with a terminal gets the pty as its stdio only: the container's mounts (its
	# /dev/console above all) stay as they were. A fresh container: no earlier exec counts.
	local before after rc=0
	R -d --name smk-m "$img" sleep 1000 >/dev/null
	before=$(E exec smk-m cat /proc/1/mountinfo)
	pty_run "${ecli[@]}" exec -it smk-m tty || rc=$?
	after=$(E exec smk-m cat /proc/1/mountinfo)
	E "${rm_now[@]}" smk-m >/dev/null
	[[ $before == "$after" ]] || { diff <(echo "$before") <(echo "$after"); return 1; }
	expect_eq 0 "$rc" "exit status of exec -t"
}
check exec-tty-keeps-mounts c_exec_tty_mounts

c_exec_detach() {
	E exec -d "$X" sh -c 'sleep 0.3; echo marker > /tmp/marker' >/dev/null
	wait_for 10 E exec "$X" test -f /tmp/marker
	expect_eq marker "$(E exec "$X" cat /tmp/marker)"
}
check exec-detached c_exec_detach

c_exec_error() {
	# An exec that cannot start: the runtime's error must reach the user.
	local out rc=0
	out=$(E exec "$X" /nonexistent-exec 2>&1) || rc=$?
	echo "$out"
	expect_match "$exec_error_rc_re" "$rc" "exit status" && expect_match 'nonexistent-exec' "$out"
}
check exec-error-reported c_exec_error

c_top() {
	local got
	got=$(E top "$X")
	echo "$got"
	expect_match 'while' "$got"
}
check top c_top

c_pause() {
	local rc=0
	E pause "$X" >/dev/null
	expect_eq paused "$(state_of "$X")"
	timeout 5 "${ecli[@]}" exec "$X" true 2>/dev/null && rc=1
	E unpause "$X" >/dev/null
	expect_eq running "$(state_of "$X")" &&
		expect_eq ok "$(E exec "$X" echo ok)" || return 1
	[[ $rc -eq 0 ]] || { echo "exec succeeded in a paused container"; return 1; }
}
check pause-unpause c_pause

c_stats() {
	local got
	got=$(E stats --no-stream --format "$stats_format" "$X")
	echo "$got"
	expect_match '^[0-9.]+[kKMG]i?B / [0-9.]+[kKMGT]i?B [1-9][0-9]*$' "$got"
}
check stats c_stats

c_update() {
	# Live resource update: the engine calls the runtime's `update --resources`.
	local files='memory/memory.limit_in_bytes memory/memory.memsw.limit_in_bytes cpu/cpu.cfs_quota_us'
	local want="134217728 268435456 25000" what="memory memsw cfs_quota" pids=()
	if [[ $update_pids == 1 ]]; then
		pids=(--pids-limit 77)
		files+=' pids/pids.max' want+=' 77' what+=' pids'
	fi
	E update -m 128m --memory-swap 256m --cpus 0.25 "${pids[@]}" "$X" >/dev/null
	expect_eq "$want" "$(E exec "$X" sh -c "cd /sys/fs/cgroup && cat $files | xargs")" "$what"
}
check update c_update

c_restart() {
	local pid1 pid2
	pid1=$(E inspect -f '{{.State.Pid}}' "$X")
	E restart -t 5 "$X" >/dev/null
	pid2=$(E inspect -f '{{.State.Pid}}' "$X")
	expect_eq running "$(state_of "$X")" &&
		[[ $pid1 != "$pid2" && $pid2 -gt 0 ]] || { echo "pid $pid1 -> $pid2"; return 1; }
	expect_eq ok "$(E exec "$X" echo ok)"
}
check restart c_restart

c_stop_term() {
	local t0
	t0=$(date +%s)
	E stop -t 20 "$X" >/dev/null
	expect_eq 0 "$(E inspect -f '{{.State.ExitCode}}' "$X")" "exit code after SIGTERM"
	(($(date +%s) - t0 < 10)) || { echo "stop took $(($(date +%s) - t0))s: SIGTERM not delivered?"; return 1; }
	E rm "$X" >/dev/null
}
check stop-sigterm c_stop_term

c_stop_kill() {
	local t0 el
	# sleep as pid 1 has no SIGTERM handler: the kernel ignores it, stop must fall back to SIGKILL.
	R -d --name "${ctr_prefix}-k" "$img" sleep 1000 >/dev/null
	t0=$(date +%s.%N)
	E stop -t 1 "${ctr_prefix}-k" >/dev/null
	el=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print (b - a >= 0.9) ? "waited" : "fast" }')
	local ok=0
	expect_eq 137 "$(E inspect -f '{{.State.ExitCode}}' "${ctr_prefix}-k")" "exit code" &&
		expect_eq waited "$el" "stop timing" || ok=1
	E rm "${ctr_prefix}-k" >/dev/null
	return $ok
}
check stop-sigkill-fallback c_stop_kill

c_kill_sig() {
	R -d --name "${ctr_prefix}-s" "$img" sh -c 'trap "echo got-usr1; exit 7" USR1; echo ready; while :; do sleep 0.1; done' >/dev/null
	logs_say_ready() { E logs "${ctr_prefix}-s" 2>&1 | grep -q ready; }
	wait_for 10 logs_say_ready
	E kill -s USR1 "${ctr_prefix}-s" >/dev/null
	local ok=0
	expect_eq 7 "$(E wait "${ctr_prefix}-s")" "exit status" &&
		expect_match got-usr1 "$(E logs "${ctr_prefix}-s")" || ok=1
	E rm "${ctr_prefix}-s" >/dev/null
	return $ok
}
check kill-signal c_kill_sig

c_logs() {
	R --name "${ctr_prefix}-l" "$img" sh -c 'echo to-stdout; echo to-stderr >&2' >/dev/null 2>&1
	expect_eq to-stdout "$(E logs "${ctr_prefix}-l" 2>/dev/null)" "stdout" &&
		expect_eq to-stderr "$(E logs "${ctr_prefix}-l" 2>&1 >/dev/null)" "stderr"
}
check logs c_logs

c_rm() {
	# (The logs check's container has exited: a plain rm, unless that check failed early.)
	E rm "${ctr_prefix}-l" >/dev/null 2>&1 || true
	R -d --name "${ctr_prefix}-r" "$img" sleep 1000 >/dev/null
	E "${rm_now[@]}" "${ctr_prefix}-r" >/dev/null
	expect_eq "" "$(E ps -aq)" "containers left"
}
check rm c_rm

c_errors() {
	# A runtime error must reach the user (through the runtime's --log file), not "unable to
	# retrieve OCI runtime error". Podman parses the whole --log file as one JSON object and
	# maps "no such file or directory" / "executable file not found" to 127, as docker does.
	local out rc=0
	out=$(R --rm "$img" /nonexistent-binary 2>&1) || rc=$?
	echo "$out"
	expect_eq 127 "$rc" "exit status" &&
		expect_match 'nonexistent-binary' "$out" &&
		[[ $out != *"unable to retrieve OCI runtime error"* ]]
}
check runtime-error-reported c_errors
