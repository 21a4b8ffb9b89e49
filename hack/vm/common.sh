# shellcheck shell=bash
# Shared helpers for hack/vm/*.sh (sourced, not run).

vm_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${repo:=$(cd "$vm_here/../.." && pwd)}"
# shellcheck source=hack/lib.sh
source "$repo/hack/lib.sh"

# Everything the VM tooling makes lives here (target/ is not versioned).
vm_cache="${SKIFF_VM_CACHE:-$repo/target/vm}"

# The files whose content defines the image: the build script, the package list, the
# customization script and the files it installs. Editing any of them changes the cache key.
vm_recipe_files() {
	echo "$vm_here/build-image.sh"
	find "$vm_here/guest" -type f | LC_ALL=C sort
}

# vm_recipe_hash: the image's cache key (16 hex digits of a sha256 over the recipe files).
vm_recipe_hash() {
	local f
	vm_recipe_files | while read -r f; do
		printf '%s\n' "${f#"$vm_here"/}"
		sha256sum <"$f"
	done | sha256sum | cut -c1-16
}

# vm_set_paths: set $vm_image, $vm_kernel, $vm_initrd for the current recipe.
vm_set_paths() {
	local h
	h=$(vm_recipe_hash)
	vm_image="$vm_cache/debian12-$h.ext4"
	vm_kernel="$vm_cache/debian12-$h.vmlinuz"
	vm_initrd="$vm_cache/debian12-$h.initrd"
}

vm_image_ready() {
	[[ -s $vm_image && -s $vm_kernel && -s $vm_initrd ]]
}

# vm_lock NAME: hold an exclusive lock for the rest of the calling process (fd 9): one image
# build, one QEMU at a time on this machine (2 cores).
vm_lock() {
	mkdir -p "$vm_cache"
	exec 9>"$vm_cache/$1.lock"
	if ! flock -n 9; then
		echo "$(basename "$0"): waiting for another $1 (lock $vm_cache/$1.lock)" >&2
		flock 9
	fi
}

# vm_need_qemu: qemu-system-x86_64. On Debian 12 it comes from bookworm-backports: the
# machines ship qemu-utils from there, which Debian 12's own qemu-system-x86 conflicts with.
vm_need_qemu() {
	command -v qemu-system-x86_64 >/dev/null 2>&1 && return 0
	local codename=
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	export DEBIAN_FRONTEND=noninteractive
	if [[ $codename == bookworm ]]; then
		local src=/etc/apt/sources.list.d/skiff-vm-backports.sources
		if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list.d/ /etc/apt/sources.list; then
			echo "$(basename "$0"): adding the bookworm-backports apt source ($src)" >&2
			cat >"$src" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
		fi
		echo "$(basename "$0"): installing qemu-system-x86 from bookworm-backports" >&2
		apt-get update -q >/dev/null
		apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null
	else
		echo "$(basename "$0"): installing qemu-system-x86" >&2
		apt-get install -y -q --no-install-recommends qemu-system-x86 >/dev/null 2>&1 || {
			apt-get update -q >/dev/null
			apt-get install -y -q --no-install-recommends qemu-system-x86 >/dev/null
		}
	fi
	command -v qemu-system-x86_64 >/dev/null 2>&1 || {
		echo "$(basename "$0"): qemu-system-x86_64 still missing after installing qemu-system-x86" >&2
		exit 1
	}
}
