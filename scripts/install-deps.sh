#!/usr/bin/env bash
# Installs everything ktune needs to build and test, from Debian packages.
# Idempotent: does nothing (and needs no network) when all are installed.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache git
  libsqlite3-dev zlib1g-dev nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev libspdlog-dev
  libxgboost-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc openssl
  libonnx-dev libonnx-testdata
  libopenblas-dev libopenblas-openmp-dev libdnnl-dev
  chromium
  # scripts/sanitize.sh and scripts/fuzz.sh: clang with its sanitizer and
  # libFuzzer runtimes, its OpenMP runtime, llvm-symbolizer for the reports.
  clang-14 libclang-rt-14-dev libomp-14-dev llvm-14
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
