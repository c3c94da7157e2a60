#!/usr/bin/env bash
# C API checks, run by .ci/run after the tests:
#  1. include/jclip.h is exactly what cbindgen generates from src/ffi;
#  2. no dependency compiles native code, and the release libjclip.a and
#     libjclip.so build with LTO;
#  3. the C examples build with cc against it. Their embeddings of the golden
#     texts and two photos equal the Rust CLI's within 1e-6, one model handle
#     serves four POSIX threads, and valgrind finds no memory error;
#  4. the library and the example need only the C runtime, libm and libgcc_s
#     (the unwinder), checked with readelf/ldd on the binaries and with nm on
#     every symbol that libjclip.a leaves undefined;
#  5. libjclip.a calls no socket function and exports the header's functions;
#  6. the sizes of the libraries and of a stripped example binary are printed.
# Needs cargo, cc, make, python3 (to read the golden texts), binutils, and
# crates.io access on the first run to install the pinned cbindgen.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

CBINDGEN_VERSION=0.29.4
TARGET_DIR=${CARGO_TARGET_DIR:-target}
LIB=$TARGET_DIR/release/libjclip.a
IMAGES=(tests/fixtures/images/rocket.jpg tests/fixtures/images/chelsea.png)
GOLDEN_TEXTS=tests/fixtures/golden/tiny-f32/expected.json

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() {
    echo "capi: $*" >&2
    exit 1
}

echo "== cbindgen $CBINDGEN_VERSION"
if ! cbindgen --version 2>/dev/null | grep -qx "cbindgen $CBINDGEN_VERSION"; then
    cargo install cbindgen --version "$CBINDGEN_VERSION" --locked --quiet
fi

echo "== include/jclip.h is up to date"
cbindgen --quiet --config cbindgen.toml --output "$work/jclip.h"
if ! diff -u include/jclip.h "$work/jclip.h"; then
    fail "include/jclip.h differs from cbindgen's output; regenerate it with:
    cbindgen --config cbindgen.toml --output include/jclip.h"
fi

echo "== no dependency builds or finds native code"
# These crates compile C/C++ or locate system libraries from build scripts.
native=$(cargo tree --locked -p jclip -e normal,build --prefix none | awk '{print $1}' | sort -u |
    grep -xE 'cc|cmake|pkg-config|bindgen|vcpkg|autotools' || true)
[[ -z $native ]] || fail "the dependency tree contains crates that build native code: $native"
echo "none of cc, cmake, pkg-config, bindgen, vcpkg, autotools"

echo "== release static and shared library (LTO)"
cargo rustc --release --locked --lib --crate-type staticlib,cdylib
[[ -f $LIB ]] || fail "$LIB was not built"

echo "== C examples, built with cc against $LIB"
make -B -C examples/c CC=cc LIB="$PWD/$LIB" INCLUDE="$PWD/include"

echo "== synthetic tiny model and the Rust CLI's embeddings"
cargo build --locked --bin jclip
jclip=$TARGET_DIR/debug/jclip
"$jclip" synth --preset tiny --out "$work/model"
mapfile -t texts < <(python3 -c '
import json, sys
for text in json.load(open(sys.argv[1]))["texts"]:
    assert "\n" not in text["text"], "a golden text spans lines"
    print(text["text"])
' "$GOLDEN_TEXTS")
[[ ${#texts[@]} -gt 0 ]] || fail "no texts in $GOLDEN_TEXTS"
text_args=()
for text in "${texts[@]}"; do
    text_args+=(--text "$text")
done

echo "== embed.c: ${#texts[@]} golden texts and each photo against the Rust CLI"
for image in "${IMAGES[@]}"; do
    expected=$work/expected-$(basename "$image").npy
    "$jclip" embed --model "$work/model" "${text_args[@]}" --image "$image" --format npy --output "$expected"
    examples/c/embed --expect "$expected" "$work/model" "$image" "${texts[@]}"
done

echo "== quickstart.c"
examples/c/quickstart "$work/model"

echo "== threads.c: one handle, several POSIX threads"
examples/c/threads "$work/model"

echo "== embed.c under valgrind (memory errors only)"
# The shell that jclip_close keeps of each handle is a leak by design, so leaks are not checked.
valgrind --quiet --error-exitcode=3 --leak-check=no \
    examples/c/embed --expect "$work/expected-rocket.jpg.npy" "$work/model" "${IMAGES[0]}" "${texts[@]}" \
    >/dev/null
echo "no memory errors"

echo "== dynamic dependencies"
# The C runtime: libc and the dynamic loader (plus the kernel's vDSO), libm,
# and libgcc_s, which provides the unwinder that Rust's panics use.
allowed='^(linux-vdso\.so\.1|ld-linux[-a-z0-9_.]*\.so\.[0-9]+|libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1)$'
for binary in examples/c/embed "$TARGET_DIR/release/libjclip.so"; do
    echo "-- $binary: NEEDED entries"
    needed=$(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    echo "$needed"
    echo "-- $binary: ldd"
    ldd "$binary"
    unexpected=$(ldd "$binary" | awk '{print $1}' | xargs -n1 basename | grep -Ev "$allowed" || true)
    [[ -z $unexpected ]] || fail "$binary links more than the C runtime and libm: $unexpected"
done

echo "== symbols that libjclip.a needs from outside (nm)"
nm --defined-only "$LIB" 2>/dev/null | awk 'NF == 3 {print $3}' | sort -u >"$work/defined"
nm --undefined-only "$LIB" 2>/dev/null | awk '$1 == "U" {print $2}' | sort -u >"$work/undefined"
nm --undefined-only "$LIB" 2>/dev/null | awk '$1 == "w" {print $2}' | sort -u >"$work/weak"
comm -23 "$work/undefined" "$work/defined" >"$work/external"
symbols_of() {
    nm -D --defined-only "$1" | awk '{sub(/@.*/, "", $3); print $3}' | sort -u
}
for library in libc.so.6 libm.so.6 libgcc_s.so.1; do
    path=$(cc -print-file-name="$library")
    [[ -f $path ]] || fail "cc does not find $library"
    symbols_of "$path" >"$work/$library.symbols"
done
# The dynamic loader defines the thread-local storage entry point __tls_get_addr.
loader=$(readelf -l examples/c/embed | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
[[ -f $loader ]] || fail "no dynamic loader found in examples/c/embed"
symbols_of "$loader" >"$work/loader.symbols"
# libc_nonshared.a contains the few libc functions (such as atexit) that are linked statically.
nonshared=$(cc -print-file-name=libc_nonshared.a)
nm --defined-only "$nonshared" 2>/dev/null | awk 'NF == 3 {print $3}' | sort -u >"$work/libc_nonshared.symbols"
cat "$work/libc.so.6.symbols" "$work/libc_nonshared.symbols" "$work/loader.symbols" | sort -u >"$work/libc.symbols"
comm -12 "$work/external" "$work/libm.so.6.symbols" >"$work/from-libm"
comm -23 "$work/external" "$work/libc.symbols" | comm -12 - "$work/libgcc_s.so.1.symbols" >"$work/from-libgcc_s"
cat "$work/libc.symbols" "$work/libm.so.6.symbols" "$work/libgcc_s.so.1.symbols" | sort -u >"$work/runtime"
comm -23 "$work/external" "$work/runtime" >"$work/unresolved"
echo "$(wc -l <"$work/external") undefined symbols: $(comm -12 "$work/external" "$work/libc.symbols" | wc -l) in libc" \
    "or the loader,"  \
    "$(wc -l <"$work/from-libm") in libm, $(wc -l <"$work/from-libgcc_s") only in libgcc_s;" \
    "$(wc -l <"$work/weak") weak references may stay unresolved"
echo "-- from libm: $(tr '\n' ' ' <"$work/from-libm")"
echo "-- only in libgcc_s: $(tr '\n' ' ' <"$work/from-libgcc_s")"
echo "-- weak: $(tr '\n' ' ' <"$work/weak")"
if [[ -s $work/unresolved ]]; then
    fail "libjclip.a needs symbols outside the C runtime and libm: $(tr '\n' ' ' <"$work/unresolved")"
fi
network=$(grep -xE 'socket|connect|bind|listen|accept4?|getaddrinfo|gethostbyname2?|send(to|msg)?|recv(from|msg)?' \
    "$work/external" || true)
[[ -z $network ]] || fail "libjclip.a calls network functions: $network"
echo "no socket or name-resolution function among them"

echo "== exported functions match the header"
nm --defined-only --extern-only "$LIB" 2>/dev/null | awk '$2 == "T" && $3 ~ /^jclip_/ {print $3}' | sort -u \
    >"$work/exported"
grep -oE '^[a-z_ ]*[ *]jclip_[a-z_]+\(' include/jclip.h | sed -E 's/.*(jclip_[a-z_]+)\($/\1/' | sort -u >"$work/declared"
if ! diff -u "$work/declared" "$work/exported"; then
    fail "the functions that libjclip.a exports differ from those include/jclip.h declares"
fi
echo "$(wc -l <"$work/exported") functions: $(tr '\n' ' ' <"$work/exported")"

echo "== sizes"
strip --strip-debug -o "$work/libjclip-nodebug.a" "$LIB"
strip -o "$work/embed-stripped" examples/c/embed
strip -o "$work/libjclip-stripped.so" "$TARGET_DIR/release/libjclip.so"
size_of() { stat -c %s "$1"; }
printf '%-40s %12s bytes\n' \
    "libjclip.a (release, LTO)" "$(size_of "$LIB")" \
    "libjclip.a without debug sections" "$(size_of "$work/libjclip-nodebug.a")" \
    "libjclip.so" "$(size_of "$TARGET_DIR/release/libjclip.so")" \
    "libjclip.so, stripped" "$(size_of "$work/libjclip-stripped.so")" \
    "examples/c/embed, stripped" "$(size_of "$work/embed-stripped")"

echo "== capi ok in $((SECONDS - started)) s"
