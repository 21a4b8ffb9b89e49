#!/usr/bin/env bash
# Build the Debian 12 guest image that hack/vm/run.sh boots: systemd as PID 1, the reference
# runtimes and engines, the tools skiff's tests use (hack/vm/guest/packages), and a unit that runs
# one command from the host and powers off (hack/vm/guest/skiff-vm-run). Needs root.
#
#   hack/vm/build-image.sh [--force]
#
# Output, under target/vm/: debian12-<key>.ext4 (the root filesystem, raw ext4, sparse),
# debian12-<key>.vmlinuz and debian12-<key>.initrd (taken from the image's /boot). <key> hashes
# this script and hack/vm/guest/*: an unchanged recipe is not rebuilt (--force rebuilds), a
# changed one replaces the old image. Prints the image path on stdout.
#
# Knobs: SKIFF_VM_MIRROR (default http://deb.debian.org/debian), SKIFF_VM_SECURITY_MIRROR
# (default http://deb.debian.org/debian-security), SKIFF_VM_DISK_SIZE (ext4 size, default 12G:
# free space costs nothing, the file is sparse and QEMU writes to a throw-away snapshot).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=hack/vm/common.sh
source "$here/common.sh"

force=
while (($#)); do
	case $1 in
	--force) force=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "usage: $0 [--force]" >&2
		exit 2
		;;
	esac
	shift
done

need_root
vm_lock build
vm_set_paths
if [[ -z $force ]] && vm_image_ready; then
	echo "$vm_image"
	exit 0
fi

mirror=${SKIFF_VM_MIRROR:-http://deb.debian.org/debian}
security=${SKIFF_VM_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
size=${SKIFF_VM_DISK_SIZE:-12G}

apt_install mmdebstrap e2fsprogs

# The package list: words of hack/vm/guest/packages, comments dropped.
packages=$(sed 's/#.*//' "$here/guest/packages" | tr -s ' \t\n' ',' | sed 's/^,//; s/,$//')

start=$(date +%s)
tree="$vm_cache/rootfs.tmp"
rm -rf "$tree" "$vm_image.tmp"
trap 'rm -rf "$tree" "$vm_image.tmp"' EXIT

echo "build-image: bootstrapping Debian 12 into $tree" >&2
# --variant=apt: Essential and apt only, then the listed packages without their Recommends.
# No documentation, manual pages or translations; dpkg runs under eatmydata (no fsync).
# The essential hook, which runs before the kernel is installed, makes the initramfs small: only
# the modules a virtio disk with ext4 and the 9p shares need (and less to decompress under TCG).
# shellcheck disable=SC2016 # the hooks' $1 is mmdebstrap's (the tree), expanded by its shell
mmdebstrap --variant=apt --mode=root --format=directory \
	--include="$packages" \
	--hook-dir=/usr/share/mmdebstrap/hooks/eatmydata \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/info/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-include=/usr/share/locale/locale.alias' \
	--dpkgopt='force-unsafe-io' \
	--essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"' \
	--essential-hook='printf "MODULES=list\n" >"$1/etc/initramfs-tools/conf.d/skiff-vm.conf"' \
	--essential-hook='printf "virtio_pci\nvirtio_blk\next4\n9pnet_virtio\n9p\n" >"$1/usr/share/initramfs-tools/modules.d/skiff-vm"' \
	--customize-hook='"'"$here"'/guest/customize.sh" "$1"' \
	bookworm "$tree" \
	"deb $mirror bookworm main" \
	"deb $mirror bookworm-updates main" \
	"deb $security bookworm-security main" >&2
echo "build-image: bootstrapped in $(($(date +%s) - start))s ($(du -sh "$tree" | cut -f1))" >&2

kernel=$(find "$tree/boot" -name 'vmlinuz-*' | sort -V | tail -1)
initrd=$(find "$tree/boot" -name 'initrd.img-*' | sort -V | tail -1)
[[ -n $kernel && -n $initrd ]] || {
	echo "build-image: no kernel or initrd under $tree/boot" >&2
	exit 1
}

mkfs_start=$(date +%s)
# mkfs.ext4 -d copies the tree into the new filesystem: no loop device, no mount.
mkfs.ext4 -q -F -L skiff-vm -E lazy_itable_init=1,lazy_journal_init=1 -d "$tree" "$vm_image.tmp" "$size"
echo "build-image: mkfs.ext4 in $(($(date +%s) - mkfs_start))s" >&2

# Replace the previous recipe's image (only one is kept: each is ~1 GB).
rm -f "$vm_cache"/debian12-*.ext4 "$vm_cache"/debian12-*.vmlinuz "$vm_cache"/debian12-*.initrd
cp "$kernel" "$vm_kernel"
cp "$initrd" "$vm_initrd"
mv "$vm_image.tmp" "$vm_image"
echo "build-image: $vm_image ($(du -h "$vm_image" | cut -f1) used of $size) in $(($(date +%s) - start))s" >&2
echo "$vm_image"
