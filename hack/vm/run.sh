#!/usr/bin/env bash
# Boot the Debian 12 guest (systemd as PID 1, cgroup v2 by default), run one command in it as root
# and exit with its exit code. Builds the image first if its recipe changed (build-image.sh).
# Needs root.
#
#   hack/vm/run.sh [OPTIONS] -- COMMAND [ARG...]
#
#   --cgroup v2|v1          v2: pure cgroup v2 (systemd.unified_cgroup_hierarchy=1, the default);
#                           v1: systemd's hybrid v1 layout (systemd.unified_cgroup_hierarchy=0)
#   --share HOST:GUEST[:ro] share the host directory HOST at GUEST (9p, read-write unless :ro);
#                           repeatable
#   --repo rw|ro|none       the repository is shared at its own path (so absolute paths baked into
#                           test binaries work), read-write by default (the tests write target/tmp)
#   --workdir DIR           where COMMAND starts (default: the current directory when it lies in a
#                           share, mapped into the guest, else /root)
#   --env NAME=VALUE        add to COMMAND's environment (repeatable); the default environment is
#                           PATH, HOME=/root, USER, LOGNAME, SHELL, LANG=C.UTF-8, TERM=dumb
#   --timeout SECS          give up (kill QEMU, exit 124) after SECS, boot included (default 3600)
#   --memory SIZE, --cpus N guest size (default 4G, 2)
#   --accel auto|kvm|tcg    auto (default): KVM when a probe boot shows it works, else TCG
#   --append ARGS           extra kernel command line arguments
#   --console               copy the guest's serial console to stderr as it runs
#   --quiet                 no progress lines from run.sh itself
#
# COMMAND runs with bash's exec, its stdin is /dev/null; its stdout and stderr are streamed to
# run.sh's stdout and stderr while it runs (each one in order, the two not interleaved exactly).
# Exit code: COMMAND's; 124 when the timeout hit; 125 when the guest failed (QEMU error, no boot,
# a share that did not mount, a crash before COMMAND finished), with the reason and the tail of
# the serial console on stderr. The run's files (console.log, qemu.log, ctl/ with the command and
# its results) are left in target/vm/run/ until the next run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=hack/vm/common.sh
source "$here/common.sh"

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}
die() {
	echo "run.sh: $*" >&2
	exit 2
}

cgroup=v2 repo_mode=rw workdir='' timeout=3600 memory=4G cpus=2 accel=auto append='' console='' quiet=''
shares=() envs=()
while (($#)); do
	case $1 in
	--cgroup) cgroup=${2:-} ;;
	--share) shares+=("${2:-}") ;;
	--repo) repo_mode=${2:-} ;;
	--workdir) workdir=${2:-} ;;
	--env) envs+=("${2:-}") ;;
	--timeout) timeout=${2:-} ;;
	--memory) memory=${2:-} ;;
	--cpus) cpus=${2:-} ;;
	--accel) accel=${2:-} ;;
	--append) append=${2:-} ;;
	--console) console=1; shift; continue ;;
	--quiet) quiet=1; shift; continue ;;
	-h | --help) usage ;;
	--) shift; break ;;
	*) echo "run.sh: unknown option $1 (the command goes after --)" >&2; usage ;;
	esac
	(($# >= 2)) || die "$1 needs a value"
	shift 2
done
(($#)) || usage
[[ $cgroup == v2 || $cgroup == v1 ]] || die "--cgroup must be v2 or v1"
[[ $repo_mode == rw || $repo_mode == ro || $repo_mode == none ]] || die "--repo must be rw, ro or none"
[[ $accel == auto || $accel == kvm || $accel == tcg ]] || die "--accel must be auto, kvm or tcg"
[[ $timeout =~ ^[0-9]+$ && $timeout -gt 0 ]] || die "--timeout must be a positive number of seconds"
[[ $cpus =~ ^[0-9]+$ ]] || die "--cpus must be a number"

say() { [[ -n $quiet ]] || echo "run.sh: $*" >&2; }

need_root
vm_need_qemu
# The image (built or rebuilt only when its recipe changed).
"$here/build-image.sh" >/dev/null
vm_set_paths

# The shares: the control share, the repository, then --share's, as "TAG HOST GUEST MODE".
share_lines=()
[[ $repo_mode == none ]] || share_lines+=("repo $repo $repo $repo_mode")
i=0
for s in "${shares[@]}"; do
	IFS=: read -r host guest mode extra <<<"$s"
	[[ -n $host && -n $guest && -z $extra ]] || die "--share wants HOST:GUEST[:ro|:rw], got '$s'"
	mode=${mode:-rw}
	[[ $mode == ro || $mode == rw ]] || die "--share mode must be ro or rw, got '$mode'"
	[[ -d $host ]] || die "--share: $host is not a directory"
	[[ $guest == /* && $guest != *[[:space:]]* ]] || die "--share: the guest path must be absolute, without spaces: '$guest'"
	host=$(cd "$host" && pwd -P)
	[[ $host != *[[:space:],]* ]] || die "--share: QEMU cannot share a path with spaces or commas: '$host'"
	share_lines+=("share$i $host $guest $mode")
	i=$((i + 1))
done
for e in "${envs[@]}"; do
	[[ $e =~ ^[A-Za-z_][A-Za-z0-9_]*= && $e != *$'\n'* ]] || die "--env wants NAME=VALUE on one line, got '$e'"
done
# The working directory: the current one when a share holds it.
if [[ -z $workdir ]]; then
	workdir=/root
	cwd=$(pwd -P)
	for line in "${share_lines[@]}"; do
		read -r _ host guest _ <<<"$line"
		if [[ $cwd == "$host" || $cwd == "$host"/* ]]; then
			workdir="$guest${cwd#"$host"}"
		fi
	done
fi

# One QEMU at a time on this machine (2 cores): later runs wait for the lock.
vm_lock qemu
run="$vm_cache/run"
ctl="$run/ctl"
rm -rf "$run"
mkdir -p "$ctl"
chmod 755 "$ctl"

# What the guest reads (hack/vm/guest/skiff-vm-run).
for line in "${share_lines[@]}"; do
	read -r tag _ guest mode <<<"$line"
	echo "$tag $guest $mode"
done >"$ctl/shares"
printf '%s\n' "${envs[@]}" >"$ctl/env"
echo "$workdir" >"$ctl/workdir"
{
	printf '# run by hack/vm/run.sh in the guest, in %s\nexec' "$workdir"
	printf ' %q' "$@"
	printf '\n'
} >"$ctl/cmd"

# --accel auto: does KVM really run a stock kernel here? Some machines have a /dev/kvm that
# cannot. The probe boots the guest kernel without a root filesystem: with working KVM it panics
# ("VFS: Unable to mount root fs") within seconds. The answer is kept per host kernel, QEMU and
# guest kernel.
probe_kvm() {
	[[ -c /dev/kvm && -w /dev/kvm ]] || return 1
	local key cache log
	key="$(uname -r) $(qemu-system-x86_64 --version | head -1) $(basename "$vm_kernel")"
	cache="$vm_cache/kvm-probe"
	if [[ -f $cache && $(head -1 "$cache") == "$key" ]]; then
		[[ $(sed -n 2p "$cache") == kvm ]]
		return
	fi
	log="$run/kvm-probe.log"
	# panic=-1 and -no-reboot: QEMU exits as soon as the kernel panics. A subshell keeps bash's
	# "Aborted" notice (QEMU aborts on some broken KVMs) off the terminal.
	(timeout 30 qemu-system-x86_64 -accel kvm -cpu host -m 256M -smp 1 -nodefaults -no-user-config \
		-display none -no-reboot -serial "file:$log" -kernel "$vm_kernel" \
		-append "console=ttyS0 panic=-1 root=/dev/nonexistent" </dev/null >"$run/kvm-probe.qemu.log" 2>&1
		true) \
		>/dev/null 2>&1 || true
	local answer=tcg
	grep -qs 'Kernel panic\|VFS: ' "$log" && answer=kvm
	printf '%s\n%s\n' "$key" "$answer" >"$cache"
	[[ $answer == kvm ]]
}
if [[ $accel == auto ]]; then
	if probe_kvm; then accel=kvm; else accel=tcg; fi
fi
if [[ $accel == kvm ]]; then
	accel_args=(-accel kvm -cpu host)
else
	# TCG: every vCPU on a host thread of its own.
	# shellcheck disable=SC2054 # commas separate QEMU's sub-options
	accel_args=(-accel tcg,thread=multi,tb-size=512 -cpu max)
fi

if [[ $cgroup == v2 ]]; then
	cg_args="systemd.unified_cgroup_hierarchy=1"
else
	cg_args="systemd.unified_cgroup_hierarchy=0"
fi
cmdline="console=ttyS0,115200 root=/dev/vda rootfstype=ext4 rw panic=-1 mitigations=off $cg_args $append"

virtfs=(-virtfs "local,path=$ctl,mount_tag=skiffvm,security_model=passthrough,multidevs=remap")
for line in "${share_lines[@]}"; do
	read -r tag host _ mode <<<"$line"
	ro=
	[[ $mode == ro ]] && ro=",readonly=on"
	virtfs+=(-virtfs "local,path=$host,mount_tag=$tag,security_model=passthrough,multidevs=remap$ro")
done

qemu_pid='' tails=()
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
		kill -TERM "$qemu_pid" 2>/dev/null || true
		sleep 1
		kill -KILL "$qemu_pid" 2>/dev/null || true
	fi
	local p
	for p in "${tails[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT TERM

say "booting $(basename "$vm_image") ($accel, cgroup $cgroup, $cpus vCPUs, $memory) to run: $*"
start=$(date +%s)
# snapshot=on: the guest's writes go to a temporary overlay (in $TMPDIR), the image stays as built.
TMPDIR=$run qemu-system-x86_64 "${accel_args[@]}" -machine q35 -smp "$cpus" -m "$memory" \
	-nodefaults -no-user-config -display none -no-reboot -nic none \
	-chardev "file,id=console,path=$run/console.log" -serial chardev:console \
	-device virtio-rng-pci \
	-drive "file=$vm_image,if=virtio,format=raw,snapshot=on,cache=unsafe" \
	-kernel "$vm_kernel" -initrd "$vm_initrd" -append "$cmdline" \
	"${virtfs[@]}" </dev/null >"$run/qemu.log" 2>&1 &
qemu_pid=$!

# Stream the command's output (and the console with --console) while the guest runs.
{ tail -n +1 -F -s 0.5 --pid="$qemu_pid" "$ctl/stdout" 2>/dev/null; } &
tails+=($!)
{ tail -n +1 -F -s 0.5 --pid="$qemu_pid" "$ctl/stderr" 2>/dev/null; } >&2 &
tails+=($!)
if [[ -n $console ]]; then
	{ tail -n +1 -F -s 0.5 --pid="$qemu_pid" "$run/console.log" 2>/dev/null; } >&2 &
	tails+=($!)
fi

timed_out=
while kill -0 "$qemu_pid" 2>/dev/null; do
	if (($(date +%s) - start >= timeout)); then
		timed_out=1
		echo "run.sh: timeout: ${timeout}s passed, killing QEMU (pid $qemu_pid)" >&2
		kill -TERM "$qemu_pid" 2>/dev/null || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$qemu_pid" 2>/dev/null || break
			sleep 0.5
		done
		kill -KILL "$qemu_pid" 2>/dev/null || true
		break
	fi
	sleep 1
done
qemu_rc=0
wait "$qemu_pid" || qemu_rc=$?
qemu_pid=''
for p in "${tails[@]}"; do wait "$p" 2>/dev/null || true; done
tails=()
elapsed=$(($(date +%s) - start))

console_tail() {
	echo "run.sh: last lines of the serial console ($run/console.log):" >&2
	tail -n 25 "$run/console.log" 2>/dev/null | sed 's/^/    /' >&2 || true
	if [[ -s $run/qemu.log ]]; then
		echo "run.sh: QEMU said ($run/qemu.log):" >&2
		tail -n 10 "$run/qemu.log" | sed 's/^/    /' >&2
	fi
}
if [[ -f $ctl/rc ]]; then
	rc=$(cat "$ctl/rc")
	say "done in ${elapsed}s: $(tr '\n' ';' <"$ctl/state" | sed 's/;$//; s/;/, /g'); exit code $rc"
	exit "$rc"
fi
if [[ -n $timed_out ]]; then
	if [[ -f $ctl/state ]] && grep -q '^started' "$ctl/state"; then
		echo "run.sh: the command did not finish within ${timeout}s" >&2
	else
		echo "run.sh: the guest did not start the command within ${timeout}s" >&2
	fi
	console_tail
	exit 124
fi
if [[ -f $ctl/error ]]; then
	echo "run.sh: the guest could not run the command: $(cat "$ctl/error")" >&2
elif ((qemu_rc != 0)); then
	echo "run.sh: QEMU failed (exit code $qemu_rc) after ${elapsed}s" >&2
elif [[ ! -f $ctl/state ]]; then
	echo "run.sh: the guest stopped after ${elapsed}s without starting the command (boot failure?)" >&2
else
	echo "run.sh: the guest stopped after ${elapsed}s before the command finished (crash?)" >&2
fi
console_tail
exit 125
