#!/usr/bin/env bash
# Tests the kernels on every instruction-set tier a CI machine is meant to
# have, and fails (never skips) when one is missing:
#
#   1. x86-64: the kernel tests, which compare every supported tier with the
#      scalar twin, and require the tiers of JCLIP_CI_X86_TIERS. Then the
#      model tests (agreement with the PyTorch reference, tiny and full
#      size, and with the golden outputs) run once per tier that runs f32
#      weights with its own kernels, forced through JCLIP_ISA. The README's
#      test command has already run every test on the default tier.
#   2. AArch64 under qemu user-mode emulation: the kernel tests on the NEON
#      tier for several emulated CPUs, each required to show its features
#      (baseline NEON; +fp16; +fp16 +dotprod; everything qemu offers). On
#      the last one the tests fail unless int8 runs on `smmla` and bf16 on
#      `bfdot`. Then a check that a missing feature does fail, and clippy of
#      the kernel crate for the aarch64 target. The engine's tests also pass on the
#      NEON tier under qemu, but building the engine for aarch64 takes
#      longer than CI's budget; README ("Development") gives the command.
#
# qemu-aarch64 7.2 hangs in pthread_create for dynamically linked aarch64
# binaries with the cross glibc 2.36, so the aarch64 tests are linked
# statically, in their own target directory.
#
# Environment:
#   JCLIP_CI_X86_TIERS   comma-separated tiers to require and test on x86-64
#                        (default: scalar,avx2,avx512,avx512bf16,amx)
#   JCLIP_CI_SKIP_AARCH64=1  skip part 2, e.g. on a machine without the
#                        cross toolchain; CI must not set it.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
shared="$(cd "$repo/.." && pwd)/shared"
cd "$repo"

x86_tiers="${JCLIP_CI_X86_TIERS:-scalar,avx2,avx512,avx512bf16,amx}"
model_tests=(--test reference --test golden)
started=$SECONDS

step() {
  echo
  echo "== kernel-tiers: $* ($((SECONDS - started)) s)"
}

step "x86-64 kernel tests, requiring tiers $x86_tiers"
JCLIP_REQUIRE_ISA="$x86_tiers" cargo test -p jclip-kernels --lib --tests

IFS=',' read -r -a tiers <<<"$x86_tiers"
for tier in "${tiers[@]}"; do
  # These tiers run f32 weights with the avx512 kernels, which the README's
  # test command has covered on the default tier (amx on this hardware).
  if [[ $tier == avx512 || $tier == avx512bf16 || $tier == amx ]]; then
    continue
  fi
  step "x86-64 model tests with JCLIP_ISA=$tier"
  JCLIP_ISA="$tier" cargo test -p jclip "${model_tests[@]}"
done

if [[ "${JCLIP_CI_SKIP_AARCH64:-}" == 1 ]]; then
  step "AArch64 skipped because JCLIP_CI_SKIP_AARCH64=1"
  exit 0
fi

step "AArch64 toolchain and qemu"
# Installs the cross toolchain and qemu when missing, then prints the env.
if [[ -x "$shared/tools/setup-aarch64.sh" ]]; then
  eval "$("$shared/tools/setup-aarch64.sh")"
else
  eval "$("$repo/.ci/aarch64-toolchain.sh")"
fi
target=aarch64-unknown-linux-gnu
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static"
export CARGO_TARGET_DIR="$repo/target/cross"

step "AArch64 build of the kernel tests"
cargo test -p jclip-kernels --target "$target" --lib --tests --no-run

# Emulated CPU model and the features it must show.
cpus=(
  "cortex-a57 neon"
  "a64fx neon,fp16"
  "cortex-a76 neon,fp16,dotprod"
  "max neon,fp16,dotprod,i8mm,bf16"
)
for entry in "${cpus[@]}"; do
  read -r cpu features <<<"$entry"
  step "AArch64 kernel tests on qemu -cpu $cpu, requiring neon and $features"
  QEMU_CPU="$cpu" JCLIP_REQUIRE_ISA=neon JCLIP_REQUIRE_FEATURES="$features" \
    cargo test -p jclip-kernels --target "$target" --lib --tests
done

step "AArch64 detection rejects a feature the emulated CPU lacks"
if QEMU_CPU=cortex-a57 JCLIP_REQUIRE_FEATURES=dotprod \
  cargo test -p jclip-kernels --target "$target" --test detection >/dev/null 2>&1; then
  echo "kernel-tiers: the detection test passed although cortex-a57 has no dotprod" >&2
  exit 1
fi

step "AArch64 clippy"
if ! command -v /usr/bin/cargo-clippy >/dev/null; then
  apt-get install -y -qq --no-install-recommends rust-web-clippy >/dev/null
fi
# Debian's cargo-clippy runs its own clippy-driver, which matches /usr/bin/rustc.
/usr/bin/cargo-clippy clippy -p jclip-kernels --all-targets --target "$target" -- -D warnings

step "done"
