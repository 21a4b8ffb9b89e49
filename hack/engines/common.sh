# Shared helpers for the engine smoke tests (sourced by docker.sh, podman.sh, containerd.sh).
#
# Each engine script runs as:   hack/engines/ENGINE.sh RUNTIME_PATH
# It starts its engine privately under a temp dir, runs its checks with RUNTIME_PATH as the
# OCI runtime, prints one line per check (PASS/FAIL/SKIP), then "N passed, M failed, K skipped",
# and removes everything it started. Exit status: 0 when nothing failed.
#
# Environment:
#   SMOKE_KEEP=1      keep the temp dir (logs, bundles) after the run for debugging
#   SMOKE_VERBOSE=1   print each failing check's output in full (default: last 15 lines)
#   SMOKE_ONLY=REGEX  run only the checks whose name matches REGEX (plus setup and leftovers)
#   SMOKE_HOLD=SECS   wait SECS before cleaning up (to poke at the engine by hand)
#   SMOKE_TRACE=1     call the runtime through a wrapper that appends every argv to
#                     $tmp/runtime-calls.log (the runtime still gets the same argv, fds and env)

set -uo pipefail

engines_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$engines_dir/../.." && pwd)"

n_pass=0
n_fail=0
n_skip=0
failed_names=()

# smoke_init NAME RUNTIME: validate the runtime, make the temp dir, set the cleanup trap.
# The temp dir name stays short: engines put unix sockets under it (108-byte limit).
smoke_init() {
	engine_name=$1
	runtime_arg=${2:-}
	if [[ $(id -u) -ne 0 ]]; then
		echo "$engine_name: must run as root" >&2
		exit 2
	fi
	if [[ -z $runtime_arg ]]; then
		echo "usage: $0 RUNTIME_PATH   (e.g. /usr/sbin/runc or target/release/skiff)" >&2
		exit 2
	fi
	runtime=$(readlink -f "$runtime_arg") || true
	if [[ -z $runtime || ! -x $runtime ]]; then
		echo "$engine_name: runtime $runtime_arg is not an executable file" >&2
		exit 2
	fi
	runtime_base=$(basename "$runtime")
	tmp=$(mktemp -d "/tmp/sm-${engine_name:0:3}.XXXXXX")
	chmod 711 "$tmp"
	# A per-run tag for cgroup parents, network and bridge names; short for interface names.
	tag="${tmp##*.}"
	tag=$(printf '%s' "$tag" | tr 'A-Z' 'a-z' | tr -cd 'a-z0-9')
	tag=${tag:0:6}
	log_dir="$tmp/logs"
	mkdir -p "$log_dir"
	# Engine helpers may drop files in their working directory (conmon writes an `oom` file
	# there): run from the temp dir so nothing lands in the caller's.
	cd "$tmp" || exit 1
	cleanup_fns=()
	trap smoke_exit EXIT
	trap 'exit 130' INT TERM

	runtime_for_engine=$runtime
	if [[ ${SMOKE_TRACE:-} == 1 ]]; then
		runtime_for_engine="$tmp/bin/$runtime_base"
		mkdir -p "$tmp/bin"
		cat >"$runtime_for_engine" <<EOF
#!/bin/sh
echo "\$(date +%T.%N) \$*" >>"$tmp/runtime-calls.log"
exec "$runtime" "\$@"
EOF
		chmod 755 "$runtime_for_engine"
	fi
	echo "== $engine_name smoke test with runtime $runtime ($("$runtime" --version 2>/dev/null | head -1))"
	start_time=$(date +%s)
}

# on_exit FN: run FN at exit (last registered runs first).
on_exit() { cleanup_fns+=("$1"); }

smoke_exit() {
	local rc=$? i
	set +e
	trap - EXIT INT TERM
	if [[ -n ${SMOKE_HOLD:-} ]]; then
		echo "holding $tmp for ${SMOKE_HOLD}s before cleanup"
		sleep "$SMOKE_HOLD"
	fi
	for ((i = ${#cleanup_fns[@]} - 1; i >= 0; i--)); do
		"${cleanup_fns[i]}" >/dev/null 2>&1
	done
	unmount_under "$tmp"
	forget_host_dirs
	if [[ ${SMOKE_KEEP:-} == 1 ]]; then
		echo "kept $tmp"
	else
		rm -rf "$tmp" 2>/dev/null || { sleep 1; unmount_under "$tmp"; rm -rf "$tmp"; }
	fi
	exit "$rc"
}

# note_host_dirs DIR...: remember which of these host directories do not exist yet, so that
# forget_host_dirs removes them at exit if they are empty (engines create shared dirs such as
# /run/containerd/s for shim sockets, even when everything else of theirs is private).
created_host_dirs=()
note_host_dirs() {
	local d
	for d in "$@"; do
		[[ -e $d ]] || created_host_dirs+=("$d")
	done
}
forget_host_dirs() {
	local i
	for ((i = ${#created_host_dirs[@]} - 1; i >= 0; i--)); do
		rmdir "${created_host_dirs[i]}" 2>/dev/null
	done
	return 0
}

# unmount_under DIR: lazily unmount every mount point below DIR, deepest first.
unmount_under() {
	local dir=$1 m
	[[ -n $dir && $dir == /tmp/* ]] || return 0
	awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
		umount -l "$m" 2>/dev/null
	done
}

# stop_pid PID [NAME]: SIGTERM a process we started, wait up to 15 s, then SIGKILL it.
stop_pid() {
	local pid=$1 i
	[[ -n $pid && $pid -gt 1 ]] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 150; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
}

# wait_for SECONDS CMD...: poll CMD every 0.1 s until it succeeds.
wait_for() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# want_check NAME: whether SMOKE_ONLY selects this check.
want_check() {
	[[ -z ${SMOKE_ONLY:-} ]] && return 0
	[[ $1 =~ $SMOKE_ONLY || $1 == leftovers* || $1 == setup* || $1 == run-detached ]]
}

# check NAME FN [ARGS...]: run FN in a subshell with its output captured; PASS when it returns 0.
# FN runs under `set -e`, which does not stop at a failed command that is not the last of an &&
# list: an `expect_x ... && expect_y ...` that is not FN's last statement needs `|| return 1`.
check() {
	local name=$1 out rc t0
	shift
	want_check "$name" || return 0
	current_check=$name
	out="$log_dir/$name.out"
	t0=$(date +%s.%N)
	(
		set -e
		"$@"
	) >"$out" 2>&1 </dev/null
	rc=$?
	local dt
	dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	if [[ $rc -eq 0 ]]; then
		n_pass=$((n_pass + 1))
		printf 'PASS %-28s (%ss)\n' "$name" "$dt"
	else
		n_fail=$((n_fail + 1))
		failed_names+=("$name")
		printf 'FAIL %-28s (%ss, rc %s)\n' "$name" "$dt" "$rc"
		if [[ ${SMOKE_VERBOSE:-} == 1 ]]; then
			sed 's/^/    | /' "$out"
		else
			tail -n 15 "$out" | sed 's/^/    | /'
		fi
	fi
}

# skip NAME REASON: the engine lacks the feature.
skip() {
	want_check "$1" || return 0
	n_skip=$((n_skip + 1))
	printf 'SKIP %-28s (%s)\n' "$1" "$2"
}

# summary: the last line of the output; the exit status of the script.
summary() {
	echo "$engine_name with $runtime_base: $n_pass passed, $n_fail failed, $n_skip skipped ($(($(date +%s) - start_time))s)"
	if ((n_fail)); then
		echo "failed: ${failed_names[*]}"
		return 1
	fi
	return 0
}

# --- assertions used inside checks (each prints what it saw on failure) ---

# expect_eq WANT GOT [WHAT]
expect_eq() {
	if [[ $1 == "$2" ]]; then return 0; fi
	echo "expected ${3:-value} [$1], got [$2]"
	return 1
}

# expect_match REGEX GOT [WHAT]
expect_match() {
	if [[ $2 =~ $1 ]]; then return 0; fi
	echo "expected ${3:-output} matching /$1/, got [$2]"
	return 1
}

# expect_rc WANT CMD...: run CMD, compare its exit status.
expect_rc() {
	local want=$1 rc=0
	shift
	"$@" || rc=$?
	if [[ $rc -eq $want ]]; then return 0; fi
	echo "expected exit status $want, got $rc from: $*"
	return 1
}

# cap_bit MASK_HEX BIT: prints 1 when capability BIT is set in the hex mask.
cap_bit() { echo $(((0x$1 >> $2) & 1)); }

# The rootfs tarball of a busybox image (hack/mkrootfs.sh: Debian's busybox-static).
make_rootfs_tar() {
	local rootfs=${SKIFF_TEST_ROOTFS:-$repo/fixtures/busybox-rootfs}
	"$repo/hack/mkrootfs.sh" "$rootfs" >&2 || return 1
	mkdir -p "$tmp/www"
	rootfs_tar="$tmp/rootfs.tar"
	# A page for the published-port check, in the image itself.
	mkdir -p "$tmp/extra/www"
	echo "smoke-page" >"$tmp/extra/www/index.html"
	tar -C "$rootfs" --exclude=./.skiff-rootfs -cf "$rootfs_tar" . || return 1
	tar -C "$tmp/extra" -rf "$rootfs_tar" ./www || return 1
}

# A shell loop for the container side of a tty check: prints `stty size` once the engine has
# set the window size (which may come a moment after the process starts).
wait_size='for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do s=$(stty size 2>/dev/null); case $s in [1-9]*) echo $s; break;; esac; sleep 0.1; done'

# pty_run [--rows R --cols C] [--input TEXT --after MARKER] CMD...: run CMD with a new pty as
# its controlling terminal and stdio (what `-it` needs), print everything it wrote, exit with its
# status. The caller's stdin is not forwarded; with --input, TEXT is typed into the terminal
# once MARKER has appeared in the output (so it reaches the container, not a half-set-up CLI).
pty_run() {
	python3 - "$@" <<'PY'
import os, pty, sys, fcntl, termios, struct, select, time
args = sys.argv[1:]
rows, cols = 0, 0
text, marker = None, b""
while args and args[0] in ("--rows", "--cols", "--input", "--after"):
    if args[0] == "--rows": rows = int(args[1])
    elif args[0] == "--cols": cols = int(args[1])
    elif args[0] == "--input": text = args[1].encode()
    else: marker = args[1].encode()
    args = args[2:]
master, slave = pty.openpty()
if rows:
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
pid = os.fork()
if pid == 0:
    os.close(master)
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    try:
        os.execvp(args[0], args)
    finally:
        os._exit(127)
os.close(slave)
out = b""
deadline = time.time() + 60
status = None
while time.time() < deadline:
    r, _, _ = select.select([master], [], [], 0.2)
    if r:
        try:
            data = os.read(master, 4096)
        except OSError:
            data = b""
        if data:
            out += data
            if text is not None and marker in out:
                os.write(master, text)
                text = None
            continue
    if status is None:
        p, st = os.waitpid(pid, os.WNOHANG)
        if p == pid:
            status = st
    if status is not None and not r:
        break
    if status is not None and r and not data:
        break
if status is None:
    os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.stdout.flush()
sys.exit(os.waitstatus_to_exitcode(status) & 0xff)
PY
}

# cgroup_leftovers PARENT: prints any directory left below PARENT in any cgroup hierarchy.
cgroup_leftovers() {
	local parent=${1#/} d
	for d in /sys/fs/cgroup/*/"$parent" /sys/fs/cgroup/"$parent"; do
		[[ -d $d ]] || continue
		find "$d" -mindepth 1 -type d 2>/dev/null
	done
}

# remove_cgroup_parent PARENT: rmdir PARENT in every hierarchy (deepest first).
remove_cgroup_parent() {
	local parent=${1#/} d
	[[ -n $parent ]] || return 0
	for d in /sys/fs/cgroup/*/"$parent" /sys/fs/cgroup/"$parent"; do
		[[ -d $d ]] || continue
		find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
}

# procs_mentioning STRING: pids (not ours) whose command line contains STRING.
procs_mentioning() {
	local p
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[[ $p == "$$" || $p == "$BASHPID" ]] && continue
		tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$1" && echo "$p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
	done
}

# procs_running EXE: pids whose executable is EXE (a runtime left running, e.g. a stuck init).
procs_running() {
	local p
	for p in /proc/[0-9]*; do
		[[ $(readlink "$p/exe" 2>/dev/null) == "$1" ]] && echo "${p#/proc/} $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)"
	done
	return 0
}

# mounts_under DIR: mount points below DIR (prints them).
mounts_under() { awk -v d="$1/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo; }

# random_port: a free-looking TCP port on loopback.
random_port() {
	local p
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		p=$((20000 + RANDOM % 20000))
		if ! grep -qi ":$(printf '%04X' "$p") " /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	echo "$p"
}

# http_get URL: fetch URL, retrying for 5 s (the server may still be starting).
http_get() {
	python3 - "$1" <<'PY'
import sys, time, urllib.request
for _ in range(50):
    try:
        sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())
        sys.exit(0)
    except Exception as e:
        err = e
        time.sleep(0.1)
print(err, file=sys.stderr)
sys.exit(1)
PY
}

# install_engine PKG...: install missing Debian packages without recommends, with a policy-rc.d
# that keeps the package scripts from starting system daemons.
install_engine() {
	local missing=() p policy=/usr/sbin/policy-rc.d created=
	for p in "$@"; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	echo "installing ${missing[*]}" >&2
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		created=1
	fi
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
		apt-get update -q >/dev/null
		apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
	fi
	local rc=$?
	[[ -n $created ]] && rm -f "$policy"
	return $rc
}
