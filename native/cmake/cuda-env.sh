#!/usr/bin/env bash
# cuda-env.sh - install (if needed) the pinned CUDA toolchain and configure + build the CUDA
# backend. Usage:  bash native/cmake/cuda-env.sh [build-dir] [extra cmake args...]
# Or `source` it to get LMOE_CUDA_NVCC / LMOE_CUTLASS_INCLUDE exported without building
# (set LMOE_CUDA_ENV_NO_BUILD=1).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
native="$(cd "$here/.." && pwd)"
eval "$(bash "$here/install-cuda-toolchain.sh" | grep '^LMOE_')"
export LMOE_CUDA_ROOT LMOE_CUDA_NVCC LMOE_CUTLASS_INCLUDE LMOE_CUTLASS_UTIL_INCLUDE
if [[ "${LMOE_CUDA_ENV_NO_BUILD:-0}" == 1 ]]; then return 0 2>/dev/null || exit 0; fi
build="${1:-$native/build}"
shift || true
gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
if [[ -f "$build/CMakeCache.txt" ]] && ! grep -q '^LMOE_WITH_CUDA:BOOL=ON' "$build/CMakeCache.txt"; then
  echo "cuda-env: reconfiguring $build with LMOE_WITH_CUDA=ON" >&2
fi
if [[ -f "$build/CMakeCache.txt" ]]; then gen=(); fi   # keep the existing generator
set -x
cmake -S "$native" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DLMOE_WITH_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$LMOE_CUDA_NVCC" -DLMOE_CUTLASS_INCLUDE="$LMOE_CUTLASS_INCLUDE" "$@"
cmake --build "$build" -j "${LMOE_BUILD_JOBS:-2}"
