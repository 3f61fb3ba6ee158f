#!/usr/bin/env bash
# Regenerates the sample OS artifacts in this directory. They are sample data,
# not a bootable OS: each file starts with the header its real counterpart has
# (bzImage setup header, newc cpio, squashfs superblock) and is padded with
# deterministic bytes, so every run gives the same files and the same digests.
# Needs bash, printf, head and openssl.
set -euo pipefail
cd "$(dirname "$0")"

# filler N SEED: N pseudo-random bytes, the same for the same SEED.
filler() {
  local key
  key=$(printf '%s' "$2" | openssl dgst -sha256 -r | cut -c1-32)
  head -c "$1" /dev/zero |
    openssl enc -aes-128-ctr -nosalt -K "$key" -iv 00000000000000000000000000000000
}

# zeros N
zeros() { head -c "$1" /dev/zero; }

# vmlinuz: 8 KiB shaped like an x86 bzImage: "MZ", setup_sects at 0x1f1,
# the 0x55aa boot flag at 0x1fe, "HdrS" and boot protocol 2.15 at 0x202, then
# a kernel version string.
{
  printf 'MZ'
  zeros $((0x1f1 - 2))
  printf '\x01'                  # setup_sects
  zeros $((0x1fe - 0x1f2))
  printf '\x55\xaa'              # boot_flag
  printf '\xeb\x66'              # jump
  printf 'HdrS\x0f\x02'          # header magic, protocol version 2.15
  zeros $((0x300 - 0x208))
  version='6.1.0-ironcore-sample (sample@ironcore.dev) #1 SMP PREEMPT_DYNAMIC'
  printf '%s\0' "$version"
  zeros $((0x400 - 0x300 - ${#version} - 1))
  filler $((8192 - 0x400)) vmlinuz
} >vmlinuz

# initramfs.img: a newc cpio archive with one file, /init, and the trailer.
newc() { # name mode size
  local namesize=$((${#1} + 1))
  printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
    1 "$2" 0 0 1 0 "$3" 0 0 0 0 "$namesize" 0
  printf '%s\0' "$1"
  # header (110) + name is padded to a multiple of 4
  zeros $(((4 - (110 + namesize) % 4) % 4))
}
init='#!/bin/sh
echo "IronCore sample initramfs: nothing to boot here"
exec /bin/sh
'
{
  newc init $((0100755)) ${#init}
  printf '%s' "$init"
  zeros $(((4 - ${#init} % 4) % 4))
  newc TRAILER!!! 0 0
} >initramfs.img.tmp
size=$(wc -c <initramfs.img.tmp)
{
  cat initramfs.img.tmp
  zeros $(((512 - size % 512) % 512)) # cpio pads to whole blocks
  filler 3072 initramfs.img
} >initramfs.img
rm initramfs.img.tmp

# root.squashfs: 8 KiB starting with a squashfs 4.0 superblock magic and
# version, then filler.
{
  printf 'hsqs'
  printf '\x01\x00\x00\x00'      # inode count
  printf '\x00\x00\x00\x00'      # modification time (epoch, reproducible)
  printf '\x00\x00\x02\x00'      # block size 128 KiB
  printf '\x00\x00\x00\x00'      # fragment count
  printf '\x01\x00\x11\x00'      # compression gzip, block_log 17
  printf '\x00\x00\x01\x00'      # flags, id count
  printf '\x04\x00\x00\x00'      # version 4.0
  zeros $((96 - 32))
  filler $((8192 - 96)) root.squashfs
} >root.squashfs

printf '%s\n' 'root=live:LABEL=ROOT rd.live.squashimg=root.squashfs rd.live.overlay.overlayfs=1 console=tty0 console=ttyS0,115200n8 ignition.firstboot ignition.platform.id=metal quiet' >cmdline
