#!/usr/bin/env bash
# Fuzz skiff's parsers with cargo-fuzz (libFuzzer), each target for a bounded time, and print
# the executions per target. Needs root only for the setup (the layer target runs as nobody).
#
#   hack/fuzz.sh [TARGET...]        targets: config seccomp state update image_manifest image_layer
#
#   FUZZ_SECONDS=60                 time per target
#   FUZZ_SANITIZER=none             none (stable-compatible build) or address (ASan: rebuilds all)
#   FUZZ_JOBS=1                     libFuzzer -fork=N workers per target
#
# Corpora live in fuzz/corpus/<target> (seeded on first use), crashes in fuzz/artifacts/<target>.
# A crash found here becomes a regression input: copy it to fuzz/regressions/<target>/ (the
# integration test reliability::fuzz_regressions replays them all) and fix the bug.
#
# This machine has only stable Rust: cargo-fuzz passes -Z flags (the sanitizers), which stable
# rustc accepts with RUSTC_BOOTSTRAP=1. cargo-fuzz itself: `cargo install cargo-fuzz`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=hack/lib.sh
source hack/lib.sh
need_cargo

secs=${FUZZ_SECONDS:-60}
san=${FUZZ_SANITIZER:-none}
jobs=${FUZZ_JOBS:-1}
all=(config seccomp state update image_manifest image_layer)
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")

if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "installing cargo-fuzz" >&2
	cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
(cd fuzz && cargo fuzz build -s "$san" >&2)
bin=$repo/fuzz/target/x86_64-unknown-linux-gnu/release

# Seed corpora: real documents skiff reads, and layers with the entry types that matter.
seed() {
	local t=$1 d=$repo/fuzz/corpus/$1
	[[ -d $d ]] && return 0
	mkdir -p "$d"
	local cfg
	cfg=$(mktemp -d)
	case $t in
	config)
		"$repo/target/debug/skiff" spec --bundle "$cfg" 2>/dev/null || cargo run -q --bin skiff -- spec --bundle "$cfg"
		cp "$cfg/config.json" "$d/default.json"
		python3 - "$cfg/config.json" "$d" "$repo/integration/fixtures/seccomp" <<-'EOF'
			import json, sys, os
			spec = json.load(open(sys.argv[1]))
			out, sec = sys.argv[2], sys.argv[3]
			for f in os.listdir(sec):
			    s = dict(spec); s["linux"] = dict(spec["linux"]); s["linux"]["seccomp"] = json.load(open(os.path.join(sec, f)))
			    json.dump(s, open(os.path.join(out, "seccomp-" + f), "w"))
			s = json.loads(json.dumps(spec))
			s["linux"]["resources"] = {"memory": {"limit": 4194304, "swap": 8388608}, "pids": {"limit": 1},
			    "cpu": {"shares": 512, "quota": 10000, "period": 100000, "cpus": "0", "mems": "0"},
			    "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}],
			    "unified": {"memory.high": "max"}}
			s["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.msgmax": "8192"}
			s["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
			s["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
			s["linux"]["namespaces"].append({"type": "user"})
			s["mounts"].append({"destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind", "ro", "idmap"]})
			s["hooks"] = {"prestart": [{"path": "/bin/true", "args": ["true"], "timeout": 5}]}
			s["process"]["rlimits"].append({"type": "RLIMIT_NPROC", "hard": 10, "soft": 10})
			s["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10], "umask": 18}
			json.dump(s, open(os.path.join(out, "rich.json"), "w"))
		EOF
		;;
	seccomp)
		cp "$repo"/integration/fixtures/seccomp/*.json "$d/"
		printf '%s' '{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],"flags":["SECCOMP_FILTER_FLAG_LOG"],"listenerPath":"/run/l.sock","syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"},{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"},{"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"},{"index":1,"value":255,"valueTwo":4,"op":"SCMP_CMP_MASKED_EQ"}]},{"names":["kill"],"action":"SCMP_ACT_KILL_PROCESS"}]}' >"$d/mixed.json"
		;;
	state)
		printf '%s' '{"ociVersion":"1.3.0","id":"c1","pid":1234,"pidStartTime":5678,"bundle":"/b","rootfs":"/b/rootfs","created":"2024-01-01T00:00:00.000000000Z","owner":"root","annotations":{"a":"b"},"poststartHooks":[{"path":"/bin/true"}],"poststopHooks":[],"process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}},"seccomp":{"defaultAction":"SCMP_ACT_ALLOW"},"rdt":null,"cgroup":null,"ownPidNs":true}' >"$d/state.json"
		printf '%s' '{"ociVersion":"1.3.0","id":"c2","pid":0,"pidStartTime":0,"bundle":"/b","rootfs":"/b/rootfs","created":"x","owner":"root","creator":[1,2]}' >"$d/creating.json"
		;;
	update)
		printf '\000%s' '{"memory":{"limit":4194304,"reservation":1048576,"swap":-1},"cpu":{"shares":1024,"quota":-1,"period":100000,"cpus":"0-1","mems":"0","realtimeRuntime":0},"pids":{"limit":10},"blockIO":{"weight":500},"unified":{"memory.max":"max"}}' >"$d/resources.json"
		printf '\002%s' '512m' >"$d/size"
		printf '\003%s' '1m30.5s' >"$d/duration"
		;;
	image_manifest)
		printf '\000%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"org.opencontainers.image.ref.name":"x:latest"}}]}' >"$d/index"
		printf '\001%s' '{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":3}]}' >"$d/manifest"
		printf '\002%s\000%s\000%s' '{"config":{"User":"app:staff","Env":["PATH=/bin","A=b"],"Entrypoint":["/bin/sh"],"Cmd":["-c","true"],"WorkingDir":"/w","Volumes":{"/v":{}},"Labels":{"l":"v"},"StopSignal":"SIGTERM"}}' \
			$'root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n' $'root:x:0:\nstaff:x:50:app\n' >"$d/config"
		;;
	image_layer)
		local l=$cfg/l
		mkdir -p "$l/etc/sub" "$l/.wh..wh..opq.d"
		echo x >"$l/etc/file"
		ln -s ../etc/file "$l/etc/sub/link"
		ln -s /etc/passwd "$l/abs-link"
		ln "$l/etc/file" "$l/etc/hard"
		: >"$l/.wh.gone"
		mkfifo "$l/fifo"
		tar -C "$l" --numeric-owner --owner=1000 --group=1000 -cf "$d/layer.tar" .
		tar -C "$l" -czf "$d/layer.tar.gz" .
		if command -v zstd >/dev/null; then zstd -q -c "$d/layer.tar" >"$d/layer.tar.zst"; fi
		# Entries that try to leave the root.
		python3 - "$d/escape.tar" <<-'EOF'
			import io, sys, tarfile
			t = tarfile.open(sys.argv[1], "w")
			def add(name, **kw):
			    i = tarfile.TarInfo(name)
			    for k, v in kw.items(): setattr(i, k, v)
			    t.addfile(i, io.BytesIO(b"x" * i.size) if i.type == tarfile.REGTYPE else None)
			add("../../outside", size=1)
			add("up", type=tarfile.SYMTYPE, linkname="../..")
			add("up/outside", size=1)
			add("hl", type=tarfile.LNKTYPE, linkname="../../etc/passwd")
			add("dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
			t.close()
		EOF
		;;
	esac
	rm -rf "$cfg"
}

results=()
for t in "${targets[@]}"; do
	seed "$t"
	corpus=$repo/fuzz/corpus/$t
	art=$repo/fuzz/artifacts/$t
	mkdir -p "$art"
	log=$(mktemp)
	run=("$bin/$t" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$art/" -rss_limit_mb=2048 -timeout=10)
	((jobs > 1)) && run+=(-fork="$jobs" -ignore_crashes=1)
	run+=("$corpus")
	if [[ $t == image_layer && $(id -u) -eq 0 ]]; then
		# Layers create files, devices and ownership: as nobody, in its own temp dir, so
		# that a layer escaping its root cannot touch anything of the host's.
		work=$(mktemp -d)
		chmod 755 "$work"
		chown -R 65534:65534 "$work" "$corpus" "$art"
		TMPDIR=$work setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
			"${run[@]}" >"$log" 2>&1 || true
		rm -rf "$work"
		chown -R 0:0 "$corpus" "$art"
	else
		"${run[@]}" >"$log" 2>&1 || true
	fi
	execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
	crashes=$(find "$art" -type f | wc -l)
	results+=("$(printf '%-15s %10s execs in %ss  corpus %5d  crash artifacts %d' "$t" "${execs:-?}" "$secs" "$(find "$corpus" -type f | wc -l)" "$crashes")")
	if grep -q 'ERROR: libFuzzer\|panicked at\|==ERROR' "$log"; then
		echo "---- $t found something:" >&2
		grep -m5 -A12 'panicked at\|ERROR: libFuzzer\|==ERROR' "$log" >&2 || true
	fi
	rm -f "$log"
done
echo "---- fuzz figures ----"
printf '%s\n' "${results[@]}"
