#!/usr/bin/env bash
# build-arm64.sh - test and build dmsparse for linux/arm64: the one script
# behind Dockerfile.arm64 (native, on an arm64 board or under emulation) and
# CI's arm64 cross build (on x86-64 with aarch64-linux-gnu-gcc and
# qemu-aarch64-static), so both run the same commands.
#
#   scripts/build-arm64.sh [--skip-tests] DESTDIR
#
# Installs into DESTDIR/usr/local:
#   bin/dmbench                      the CLI
#   lib/libdmsparse.so{,.1}          the C ABI
#   include/dmsparse.h, lib/pkgconfig/dmsparse.pc
#
# Tests (unless --skip-tests): go vet, go test of every package (under
# qemu-aarch64-static, statically linked, when cross-building), and the C
# ABI end-to-end check (scripts/capi-test.sh).
# Environment: GO (default go), CC_ARM64 (default aarch64-linux-gnu-gcc,
# cross only), PREFIX (default /usr/local).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
GO=${GO:-go}
PREFIX=${PREFIX:-/usr/local}
tests=1
if [ "${1:-}" = --skip-tests ]; then
	tests=0
	shift
fi
if [ $# -ne 1 ]; then
	echo "usage: $0 [--skip-tests] DESTDIR" >&2
	exit 2
fi
mkdir -p "$1"
dest=$(cd "$1" && pwd)

export CGO_ENABLED=1
if [ "$("$GO" env GOHOSTARCH)" = arm64 ]; then
	mode=native
	unset GOARCH
	cc=${CC:-gcc}
	testflags=()
else
	mode=cross
	export GOARCH=arm64
	cc=${CC_ARM64:-aarch64-linux-gnu-gcc}
	export CC=$cc
	# Static test binaries run under qemu-aarch64-static without a sysroot.
	testflags=(-exec qemu-aarch64-static -ldflags '-linkmode=external -extldflags=-static')
fi
echo "build-arm64: $mode build with $cc ($("$GO" version))"

if [ "$tests" = 1 ]; then
	echo "build-arm64: go vet ./..."
	"$GO" vet ./...
	echo "build-arm64: go test ./..."
	"$GO" test -count=1 "${testflags[@]}" ./...
	echo "build-arm64: C ABI end-to-end"
	if [ "$mode" = native ]; then
		bash scripts/capi-test.sh --no-go-tests
	else
		bash scripts/capi-test.sh --arm64-only
	fi
fi

echo "build-arm64: dmbench -> $dest$PREFIX/bin"
mkdir -p "$dest$PREFIX/bin"
"$GO" build -trimpath -ldflags '-s -w' -o "$dest$PREFIX/bin/dmbench" ./cmd/dmbench
echo "build-arm64: libdmsparse -> $dest$PREFIX/lib"
make -s -C capi install GO="$GO" PREFIX="$PREFIX" DESTDIR="$dest" BUILD="$root/capi/build-arm64"
rm -rf "$root/capi/build-arm64"
file "$dest$PREFIX/bin/dmbench" "$dest$PREFIX/lib/libdmsparse.so.1" 2>/dev/null || true
echo "build-arm64: done"
