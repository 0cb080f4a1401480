#!/usr/bin/env bash
# capi-test.sh - end-to-end check of the dmsparse C ABI, for CI.
#
# 1. Go tests of the C ABI packages (race detector on; the handle table,
#    argument checks and the real diffload runtime behind them), and the
#    CGO_ENABLED=0 guard: ./capi must still vet and build without cgo.
# 2. Builds libdmsparse.so with `make -C capi install` into a temporary
#    prefix (library, dmsparse.h, dmsparse.pc).
# 3. Compiles examples/c with gcc against the installed header, found with
#    pkg-config, and links the installed library.
# 4. Writes a small multi-task store (examples/c/mkstore) and runs the
#    example (library vs naive loop, ample and tight budgets, every kernel
#    that the CPU offers) and the misuse program.
#
# Options:
#   --arm64        also cross-build the library and examples for linux/arm64
#                  (CC_ARM64, default aarch64-linux-gnu-gcc) and run them
#                  under qemu-aarch64-static with SYSROOT_ARM64 (default
#                  /usr/aarch64-linux-gnu); slow (about two minutes cold).
#   --arm64-only   only the arm64 part (no host build, no Go tests).
#   --no-go-tests  skip step 1 (when CI runs those tests elsewhere).
#   --keep         keep the temporary directory and print its path.
# Environment: GO (go tool, default go), CC (default gcc), TMPDIR.
# Exits non-zero on the first failure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
GO=${GO:-go}
CC=${CC:-gcc}
CC_ARM64=${CC_ARM64:-aarch64-linux-gnu-gcc}
SYSROOT_ARM64=${SYSROOT_ARM64:-/usr/aarch64-linux-gnu}
arm64=0
host=1
gotests=1
keep=0
for a in "$@"; do
	case $a in
	--arm64) arm64=1 ;;
	--arm64-only) arm64=1 host=0 gotests=0 ;;
	--no-go-tests) gotests=0 ;;
	--keep) keep=1 ;;
	*) echo "usage: $0 [--arm64 | --arm64-only] [--no-go-tests] [--keep]" >&2; exit 2 ;;
	esac
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/capi-test.XXXXXX")
if [ "$keep" = 1 ]; then
	echo "capi-test: keeping $tmp"
else
	trap 'rm -rf "$tmp"' EXIT
fi
start=$(date +%s)
step() { echo "== capi-test: $* ($(($(date +%s) - start)) s)"; }

if [ "$gotests" = 1 ]; then
	step "go vet and race tests of capi and examples"
	"$GO" vet ./capi/... ./examples/...
	"$GO" test -race -count=1 ./capi/... ./examples/...

	step "CGO_ENABLED=0 build, vet and test of capi (without cgo the library is skipped, not broken)"
	CGO_ENABLED=0 "$GO" vet ./capi/... ./examples/...
	CGO_ENABLED=0 "$GO" build -o "$tmp/capi-nocgo" ./capi
	CGO_ENABLED=0 "$GO" test -count=1 ./capi/...
fi

# e2e NAME CC RUNNER...: builds and installs the library for the current
# GOARCH into $tmp/NAME, compiles the examples with CC against it, and runs
# them (through RUNNER, e.g. qemu, when given).
e2e() {
	local name=$1 cc=$2
	shift 2
	local run=("$@")
	local prefix="$tmp/$name/prefix"
	step "$name: build and install libdmsparse into $prefix"
	make -s -C capi install GO="$GO" PREFIX="$prefix" BUILD="$tmp/$name/build"
	test -f "$prefix/include/dmsparse.h"
	test -f "$prefix/lib/pkgconfig/dmsparse.pc"
	nm -D --defined-only "$prefix/lib/libdmsparse.so" >"$tmp/$name/symbols"
	local sym
	for sym in dms_open dms_switch dms_begin_switch dms_pending_wait_layer dms_pending_views dms_prefetch_start \
		dms_acquire dms_views_tensor dms_views_linear dms_views_release dms_close dms_last_error; do
		if ! grep -qw "$sym" "$tmp/$name/symbols"; then
			echo "capi-test: $name libdmsparse.so does not export $sym" >&2
			exit 1
		fi
	done

	export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
	step "$name: compile the C examples with $cc against the installed header ($(pkg-config --cflags --libs dmsparse))"
	make -s -C examples/c CC="$cc" BUILD="$tmp/$name/examples"
	local ex="$tmp/$name/examples"

	step "$name: run the example (ample budget)"
	"${run[@]}" "$ex/example" "$store"
	# 45 slots of 4 KiB: the largest task needs 41, so switches must evict.
	step "$name: run the example (tight budget: switches evict)"
	"${run[@]}" "$ex/example" "$store" 184320 >"$tmp/$name/tight.log"
	if ! grep -Eq '[1-9][0-9]* evicted' "$tmp/$name/tight.log"; then
		echo "capi-test: $name: the tight budget evicted nothing" >&2
		cat "$tmp/$name/tight.log" >&2
		exit 1
	fi
	tail -n 1 "$tmp/$name/tight.log"
	step "$name: run the example with every kernel the CPU offers"
	local k
	for k in $(DMSPARSE_KERNEL= "${run[@]}" "$ex/example" --kernels); do
		DMSPARSE_KERNEL=$k "${run[@]}" "$ex/example" "$store" >"$tmp/$name/kernel-$k.log" 2>&1 || {
			cat "$tmp/$name/kernel-$k.log" >&2
			exit 1
		}
		echo "kernel $k: $(tail -n 1 "$tmp/$name/kernel-$k.log")"
	done

	step "$name: run the misuse checks"
	"${run[@]}" "$ex/misuse" "$store" "$tmp" >"$tmp/$name/misuse.log" 2>&1 || {
		cat "$tmp/$name/misuse.log" >&2
		exit 1
	}
	echo "$name: $(grep -c '^ok' "$tmp/$name/misuse.log") misuse checks passed"
}

step "write the example store"
mkdir -p "$tmp/store"
store="$tmp/store/family.dms"
CGO_ENABLED=0 GOARCH= "$GO" run ./examples/c/mkstore -o "$store"

if [ "$host" = 1 ]; then
	mkdir -p "$tmp/host"
	e2e host "$CC"
	# The header must also compile as C++ (vendor stacks are often C++).
	if command -v g++ >/dev/null; then
		# With the kernels' header too: the two must not collide.
		printf '#include <dmsparse.h>\n#include <dmsparse_kernels.h>\nint main() { dms_options o = {}; o.budget_bytes = 1; dms_view v = {}; dms_bsr_view b = {}; return (int)(v.rows + b.rows) + (o.budget_bytes == 1 ? 0 : 1); }\n' >"$tmp/hdr.cc"
		g++ -std=c++11 -Wall -Werror $(PKG_CONFIG_PATH="$tmp/host/prefix/lib/pkgconfig" pkg-config --cflags dmsparse) -c -o "$tmp/hdr.o" "$tmp/hdr.cc"
	fi
fi

if [ "$arm64" = 1 ]; then
	mkdir -p "$tmp/arm64"
	(
		export GOARCH=arm64 CGO_ENABLED=1 CC=$CC_ARM64
		e2e arm64 "$CC_ARM64" qemu-aarch64-static -L "$SYSROOT_ARM64"
	)
fi

step "PASS"
