#!/usr/bin/env bash
# Installs the Debian 12 packages recblocks needs to build and test, and only
# those that are missing. Non-interactive; uses sudo only when not root.
#   scripts/setup.sh           what the build, the tests and the demo need
#   scripts/setup.sh --fuzz    and clang with libFuzzer (scripts/fuzz.sh; ./recblocks test runs it)
set -euo pipefail

packages=(build-essential cmake g++ libeigen3-dev libxsimd-dev catch2 libbenchmark-dev pkgconf
          libopenmpi-dev openmpi-bin)  # MPI: the data-parallel tests (docs/distributed.md)
if [[ "${1:-}" == "--fuzz" ]]; then
    packages+=(clang libclang-rt-dev)  # clang++ 14 and its libFuzzer / sanitizer runtimes
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if ((${#missing[@]} == 0)); then
    echo "setup: all packages present (${packages[*]})"
    exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "setup: need root or sudo to install: ${missing[*]}" >&2
        exit 1
    fi
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
