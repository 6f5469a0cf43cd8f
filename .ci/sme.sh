#!/usr/bin/env bash
# Cross-compile the cext kernel tests for Armv9 (clang-19, static) and run them under
# qemu-aarch64-static with SME at several streaming vector lengths, then with SME off.
# Fails unless: every backend matches the reference bit for bit, the SME micro-kernel really
# ran when SME is on, the reference fallback is chosen when SME is off, and the reference
# outputs are bit-identical to the native x86-64 build (same digest).
# `sme.sh --install-only` installs the toolchain and stops (.ci/run does this first).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v clang-19 >/dev/null || need+=(clang-19)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
[ -e /usr/aarch64-linux-gnu/lib/libc.a ] || need+=(libc6-dev-arm64-cross)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
if [ ${#need[@]} -gt 0 ]; then
    echo "sme.sh: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ "${1:-}" = "--install-only" ]; then
    echo "sme.sh: cross toolchain ready ($(clang-19 --version | head -n 1); $(qemu-aarch64-static --version | head -n 1))"
    exit 0
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
srcs=(cext/src/dispatch.c cext/kernels/*/*.c cext/tests/test_kernels.c)
flags=(-O2 -Wall -Werror -ffp-contract=off -fno-math-errno -Icext/include)

cc "${flags[@]}" "${srcs[@]}" -lm -lpthread -o "$out/test_native"
clang-19 --target=aarch64-linux-gnu "${flags[@]}" "${srcs[@]}" -static -lm -lpthread \
    -o "$out/test_arm64"

digest_of() { grep -o 'reference digest [0-9a-f]*' "$1" | awk '{print $3}'; }

"$out/test_native" | tee "$out/native.log" | tail -n 2
native="$(digest_of "$out/native.log")"
fail=0
run() { # $1 = label, $2 = qemu cpu, $3 = expected backend
    echo "== arm64 $1 (-cpu $2), expect backend $3"
    if ! qemu-aarch64-static -cpu "$2" "$out/test_arm64" --expect "$3" >"$out/run.log"; then
        cat "$out/run.log"
        fail=1
        return
    fi
    grep -E '^(expected backend|[0-9]+ passed)' "$out/run.log"
    local d
    d="$(digest_of "$out/run.log")"
    if [ "$d" != "$native" ]; then
        echo "FAIL reference digest $d differs from x86-64 native $native"
        fail=1
    fi
}
for vl in 16 64 256; do
    run "SME VL=${vl}B" "max,sme_fa64=off,sme-default-vector-length=$vl" sme
done
run "SME off" "max,sme=off" ref
if [ "$fail" -ne 0 ]; then
    echo "sme.sh: FAILED"
    exit 1
fi
echo "sme.sh: SME exercised at 3 vector lengths, fallback ok, digests equal x86-64 ($native)"
