#!/usr/bin/env bash
# install-deps.sh — installs the Debian packages ferry needs to build, test and demo, skipping
# those already present (apt-get update runs only when something is missing).
# Usage: scripts/install-deps.sh [build|demo|test|fuzz]   (default: test)
set -euo pipefail

what=${1:-test}
build_pkgs=(build-essential cmake pkg-config libprotobuf-c-dev protobuf-c-compiler libonnx-dev
            libdnnl-dev libmicrohttpd-dev libjansson-dev libssl-dev zlib1g-dev libzstd-dev curl)
test_pkgs=(libcmocka-dev libonnx-testdata python3-onnx python3-numpy python3-torch
           python3-torchvision python3-sklearn python3-pytest python3-requests prometheus
           dataset-fashion-mnist chromium)
fuzz_pkgs=(clang libclang-rt-14-dev libonnx-testdata)

pkgs=("${build_pkgs[@]}")
case "$what" in
  build|demo) ;;
  test) pkgs+=("${test_pkgs[@]}") ;;
  fuzz) pkgs+=("${fuzz_pkgs[@]}") ;;
  *) echo "usage: $0 [build|demo|test|fuzz]" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
