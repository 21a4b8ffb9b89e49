#!/usr/bin/env bash
# Build a minimal busybox root filesystem for skiff's tests, demo and benchmarks.
#
#   hack/mkrootfs.sh [DIR]      (default: <repo>/fixtures/busybox-rootfs)
#
# Uses Debian's statically linked busybox (package busybox-static), so the rootfs
# needs no shared libraries. Idempotent: a stamp file records the busybox binary
# it was built from; a second call with the same busybox returns immediately.
# The build happens in DIR.tmp.<pid> and is renamed into place, so concurrent
# callers never see a half-built tree.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-$repo/fixtures/busybox-rootfs}"

# Debian's busybox-static replaces /bin/busybox with the static build.
if command -v dpkg >/dev/null 2>&1 && ! dpkg -s busybox-static >/dev/null 2>&1; then
	echo "mkrootfs: installing busybox-static" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q busybox-static >/dev/null 2>&1 || {
		apt-get update -q >/dev/null
		apt-get install -y -q busybox-static >/dev/null
	}
fi
busybox=/bin/busybox
[[ -x $busybox ]] || busybox=/usr/bin/busybox
[[ -x $busybox ]] || { echo "mkrootfs: no busybox binary found" >&2; exit 1; }

stamp_want="$(stat -c '%s %Y' "$(readlink -f "$busybox")") v1"
if [[ -f $dir/.skiff-rootfs && "$(cat "$dir/.skiff-rootfs")" == "$stamp_want" ]]; then
	exit 0
fi

mkdir -p "$(dirname "$dir")"
tmp="$dir.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,home/user,run,var/tmp,mnt}
chmod 1777 "$tmp/tmp" "$tmp/var/tmp"
chmod 700 "$tmp/root"
cp "$busybox" "$tmp/bin/busybox"
chmod 755 "$tmp/bin/busybox"

# One symlink per applet, at the path busybox itself reports (bin, sbin, usr/bin, usr/sbin).
while read -r applet; do
	[[ -n $applet ]] || continue
	name="${applet##*/}"
	[[ $name == busybox ]] && continue
	sub="${applet%/*}"
	[[ $sub == "$applet" ]] && sub=bin
	case $sub in
	bin) rel=busybox ;;
	sbin) rel=../bin/busybox ;;
	*) rel=../../bin/busybox ;;
	esac
	ln -sf "$rel" "$tmp/$sub/$name"
done < <("$busybox" --list-full 2>/dev/null || "$busybox" --list | sed 's|^|bin/|')

cat >"$tmp/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$tmp/etc/group" <<'GROUP'
root:x:0:
users:x:100:user
user:x:1000:
nogroup:x:65534:
GROUP
echo skiff >"$tmp/etc/hostname"
cat >"$tmp/etc/hosts" <<'HOSTS'
127.0.0.1	localhost
::1	localhost
HOSTS
: >"$tmp/etc/resolv.conf"
chown 1000:1000 "$tmp/home/user"
echo "$stamp_want" >"$tmp/.skiff-rootfs"

rm -rf "$dir.old.$$"
if [[ -e $dir ]]; then mv "$dir" "$dir.old.$$"; fi
mv "$tmp" "$dir"
rm -rf "$dir.old.$$"
trap - EXIT
echo "mkrootfs: built $dir" >&2
