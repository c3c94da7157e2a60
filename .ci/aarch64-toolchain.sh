#!/usr/bin/env bash
# Installs the aarch64 cross toolchain and qemu user-mode emulation from
# Debian, for CI machines without the team's shared tools directory, then
# prints the environment that cross builds need (eval its output).
#
# rustup cannot add targets on these machines, so cross builds use Debian's
# rustc-web compiler with its arm64 standard library. When the shared
# ../shared/tools/setup-aarch64.sh exists, .ci/kernel-tiers.sh uses that
# instead; both install the same packages.
set -euo pipefail

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends \
  rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >&2
/usr/bin/rustc --version >&2
echo 'export RUSTC=/usr/bin/rustc'
echo 'export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc'
echo 'export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"'
