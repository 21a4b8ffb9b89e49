# Shared helpers for hack/*.sh (sourced, not run).

# The repository (scripts sourcing this may have set it already).
: "${repo:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"

# need_root: the scripts create namespaces, mounts and cgroups.
need_root() {
	if [[ $(id -u) -ne 0 ]]; then
		echo "$(basename "$0"): must run as root" >&2
		exit 1
	fi
}

# apt_install PKG...: install the Debian packages that are missing; `apt-get update` at most once.
_apt_updated=""
apt_install() {
	local missing=() p
	for p in "$@"; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	echo "installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; then
		if [[ -z $_apt_updated ]]; then
			apt-get update -q >/dev/null
			_apt_updated=1
		fi
		apt-get install -y -q "${missing[@]}" >/dev/null
	fi
}

# need_cargo: Rust comes from rustup (Debian 12's rustc is too old for the dependencies).
need_cargo() {
	if ! command -v cargo >/dev/null 2>&1 && [[ -x $HOME/.cargo/bin/cargo ]]; then
		export PATH="$HOME/.cargo/bin:$PATH"
	fi
	if ! command -v cargo >/dev/null 2>&1; then
		echo "cargo not found: install Rust first (https://rustup.rs)" >&2
		exit 1
	fi
}

# skiff_release_path: where build_release_skiff leaves skiff: the musl build, or the glibc
# fallback's when only that one exists.
skiff_release_path() {
	local musl
	musl="$repo/target/$(uname -m)-unknown-linux-musl/release/skiff"
	if [[ ! -x $musl && -x $repo/target/release/skiff ]]; then
		echo "$repo/target/release/skiff"
	else
		echo "$musl"
	fi
}

# runtime_bin NAME: the path of Debian's runc or crun (where the package puts it when not on PATH).
runtime_bin() {
	case $1 in
	runc) command -v runc || echo /usr/sbin/runc ;;
	crun) command -v crun || echo /usr/bin/crun ;;
	*) return 1 ;;
	esac
}

# delete_all BIN ROOT: force-delete every container the runtime BIN lists under --root ROOT.
delete_all() {
	local id
	for id in $("$1" --root "$2" list -q 2>/dev/null); do
		"$1" --root "$2" delete --force "$id" >/dev/null 2>&1 || true
	done
}

# build_release_skiff: build the skiff binary that is shipped and benchmarked, and set $skiff_release
# to its path: release profile, statically linked against musl (no dynamic loader, no shared
# libraries to map: smaller resident set, faster startup), without skiff-image's crates. Falls back
# to a glibc build, with a warning, where rustup cannot add the musl target (offline).
build_release_skiff() {
	need_cargo
	local target
	target="$(uname -m)-unknown-linux-musl"
	if command -v rustup >/dev/null 2>&1 &&
		{ rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target" >&2; }; then
		cargo build --release --no-default-features --target "$target" --bin skiff
		skiff_release="$repo/target/$target/release/skiff"
	else
		echo "$(basename "$0"): warning: Rust target $target unavailable; building skiff against glibc" >&2
		cargo build --release --no-default-features --bin skiff
		skiff_release="$repo/target/release/skiff"
	fi
}

# mount_hugetlb_v1_for_crun: crun 1.8 refuses a hybrid cgroup host while hugetlb sits on
# cgroup2; a v1 hierarchy of its own for hugetlb makes the host usable for it.
# A controller enabled in a cgroup2 subtree_control (skiff's tests and containers enable it there)
# cannot move to v1: it is disabled there first, deepest cgroups first. The host is left that way
# (a v1 hugetlb hierarchy is what runs crun here); only scripts that run crun call this.
mount_hugetlb_v1_for_crun() {
	[[ -d /sys/fs/cgroup/unified ]] || return 0
	mountpoint -q /sys/fs/cgroup/hugetlb && return 0
	local f
	while read -r f; do
		grep -qw hugetlb "$f" && echo -hugetlb >"$f" 2>/dev/null || true
	done < <(find /sys/fs/cgroup/unified -name cgroup.subtree_control | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-)
	mkdir -p /sys/fs/cgroup/hugetlb 2>/dev/null || true
	mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb || true
}

# make_true_bundle DIR SPEC_RUNTIME: the benchmark bundle: a copy of the busybox rootfs
# (hack/mkrootfs.sh), config.json from `SPEC_RUNTIME spec`, running /bin/true without a
# terminal, ociVersion 1.0.2 (crun 1.8 refuses 1.3.0; skiff, runc and crun all take 1.0.2).
make_true_bundle() {
	local dir=$1 spec_from=$2
	mkdir -p "$dir"
	cp -a "$repo/fixtures/busybox-rootfs" "$dir/rootfs"
	"$spec_from" spec --bundle "$dir"
	python3 - "$dir/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["ociVersion"] = "1.0.2"
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
}
