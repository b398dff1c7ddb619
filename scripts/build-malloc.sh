#!/usr/bin/env bash
# Builds libgoheap-malloc.so: GoHeap as the C allocator of any Linux program.
#
#   bash scripts/build-malloc.sh [output-dir]     (default .build/malloc)
#
# GoHeap's Swift sources and Malloc/Malloc.swift are compiled together in
# Embedded Swift (whole module, no Swift runtime: the .so needs only libc),
# then linked with the C shims and Malloc/malloc.c under a version script that
# exports only the malloc family and goheap.h's functions. SwiftPM cannot
# build this product (it links the Swift runtime into every Swift library and
# would need unsafe flags), so the GoHeap package stays flag-free and this
# script builds the library. Needs swiftc (6.1 or later) and clang.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.build/malloc}"
mkdir -p "$out/obj/inc"
swiftc_bin="$(command -v swiftc)"
clang_bin="$(command -v clang || command -v gcc)"
toolchain_lib="$(dirname "$(dirname "$(readlink -f "$swiftc_bin")")")/lib/swift/embedded/x86_64-unknown-linux-gnu"

# CShims as a clang module for the Embedded compile (SwiftPM makes its own).
cp CShims/include/CShims.h "$out/obj/inc/"
printf 'module CShims {\n  header "CShims.h"\n  export *\n}\n' > "$out/obj/inc/module.modulemap"

"$swiftc_bin" -enable-experimental-feature Embedded -wmo -parse-as-library -module-name GoHeap \
    -O -Xcc -fPIC -Xllvm -relocation-model=pic -I "$out/obj/inc" \
    -emit-object -o "$out/obj/goheap-swift.o" Sources/GoHeap/*.swift Malloc/Malloc.swift
"$clang_bin" -c -O2 -fPIC -fvisibility=hidden -ftls-model=initial-exec -I CShims/include \
    -o "$out/obj/shims.o" CShims/shims.c
"$clang_bin" -c -O2 -fPIC -fvisibility=hidden -Wall -Wextra -I Malloc/include \
    -o "$out/obj/malloc.o" Malloc/malloc.c
extra=()
[ -f "$toolchain_lib/libswiftUnicodeDataTables.a" ] && extra+=("$toolchain_lib/libswiftUnicodeDataTables.a")
"$clang_bin" -shared -o "$out/libgoheap-malloc.so" \
    "$out/obj/malloc.o" "$out/obj/goheap-swift.o" "$out/obj/shims.o" "${extra[@]}" \
    -Wl,--version-script=Malloc/goheap-malloc.map -Wl,-Bsymbolic -Wl,--gc-sections \
    -Wl,-z,nodelete -Wl,--no-undefined -Wl,-soname,libgoheap-malloc.so -lpthread -ldl
cp Malloc/include/goheap.h "$out/goheap.h"
echo "built $out/libgoheap-malloc.so ($(stat -c %s "$out/libgoheap-malloc.so") bytes)" >&2
