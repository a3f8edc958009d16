#!/bin/sh
# SPDX-License-Identifier: AGPL-3.0-or-later
# Copies binaries and exactly the shared libraries they load (ldd, including the dynamic loader)
# into a root tree for an image built FROM scratch. Fails when ldd reports a library "not found".
# Usage: collect-libs.sh DESTDIR BINARY...   (binaries go to DESTDIR/usr/local/bin)
set -eu
dest=$1
shift
mkdir -p "$dest/usr/local/bin"
for bin in "$@"; do
	cp "$bin" "$dest/usr/local/bin/"
	out=$(ldd "$bin")
	if printf '%s\n' "$out" | grep -q 'not found'; then
		printf '%s\n' "$out" | grep 'not found' >&2
		echo "collect-libs.sh: $bin: missing shared libraries" >&2
		exit 1
	fi
	# Lines: "libx.so.1 => /lib/.../libx.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)".
	printf '%s\n' "$out" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
	while read -r lib; do
		mkdir -p "$dest$(dirname "$lib")"
		# -L: the file itself, under the name the binary asks for.
		cp -L "$lib" "$dest$lib"
	done
done
