#!/usr/bin/env bash
# install-cuda-toolchain.sh - make a CUDA 13.0 toolkit + CUTLASS 4.2 available for the LatentMoE
# CUDA backend (native/src/cuda).
#
# If a CUDA toolkit is already present (nvcc on PATH, or $CUDA_HOME/bin/nvcc, or
# $CUDAToolkit_ROOT/bin/nvcc) it is used for nvcc; CUTLASS headers still come from the pinned
# nvidia-cutlass wheel unless $CUTLASS_DIR points at a CUTLASS checkout (with include/).
# Otherwise the pinned NVIDIA wheels are pip-installed into <repo>/.tools/cuda (git-ignored).
#
# Prints the resulting settings as shell assignments on its last lines:
#   LMOE_CUDA_NVCC=...  LMOE_CUTLASS_INCLUDE=...  LMOE_CUDA_ROOT=...
# Idempotent: a stamp file records a finished install of exactly these pins.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${LMOE_CUDA_TOOLS_DIR:-$repo/.tools/cuda}"

PINS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-cccl==13.0.85
  nvidia-cublas==13.0.2.14
  nvidia-cutlass==4.2.0.0
)
stamp="$target/.lmoe-stamp"
want="$(printf '%s\n' "${PINS[@]}")"

die() { echo "install-cuda-toolchain: error: $*" >&2; exit 1; }
say() { echo "install-cuda-toolchain: $*" >&2; }

# 1) an existing toolkit?
sys_nvcc=""
if [[ -n "${CUDAToolkit_ROOT:-}" && -x "${CUDAToolkit_ROOT}/bin/nvcc" ]]; then
  sys_nvcc="${CUDAToolkit_ROOT}/bin/nvcc"
elif [[ -n "${CUDA_HOME:-}" && -x "${CUDA_HOME}/bin/nvcc" ]]; then
  sys_nvcc="${CUDA_HOME}/bin/nvcc"
elif command -v nvcc >/dev/null 2>&1; then
  sys_nvcc="$(command -v nvcc)"
fi

need_wheels=1
pins=("${PINS[@]}")
if [[ -n "$sys_nvcc" ]]; then
  say "using the CUDA toolkit found at $sys_nvcc"
  if [[ -n "${CUTLASS_DIR:-}" && -f "${CUTLASS_DIR}/include/cutlass/cutlass.h" ]]; then
    need_wheels=0
  else
    pins=(nvidia-cutlass==4.2.0.0)   # only the CUTLASS headers are needed
    want="$(printf '%s\n' "${pins[@]}")"
    stamp="$target/.lmoe-stamp-cutlass"
  fi
fi

if [[ $need_wheels == 1 ]]; then
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    say "already installed in $target (stamp $stamp)"
  else
    say "pip-installing into $target: ${pins[*]}"
    rm -rf "$target"
    mkdir -p "$target"
    python3 -m pip install --disable-pip-version-check --no-deps --no-compile --quiet \
        --target "$target" "${pins[@]}" >&2 \
      || die "pip install of ${pins[*]} into $target failed"
    printf '%s\n' "$want" > "$stamp"
  fi
fi

cuda_root=""
if [[ -n "$sys_nvcc" ]]; then
  nvcc="$sys_nvcc"
  cuda_root="$(cd "$(dirname "$sys_nvcc")/.." && pwd)"
else
  cuda_root="$target/nvidia/cu13"
  nvcc="$cuda_root/bin/nvcc"
  [[ -x "$nvcc" ]] || die "no nvcc at $nvcc after install (wheel layout changed?)"
  # nvcc.profile adds -L$(TOP)/lib64 ; the wheel ships lib/.
  if [[ ! -e "$cuda_root/lib64" ]]; then
    ln -s lib "$cuda_root/lib64"
    say "made $cuda_root/lib64 -> lib"
  fi
  # static cudart for -cudart=static (the wheel ships libcudart_static.a in lib/)
  [[ -f "$cuda_root/lib/libcudart_static.a" ]] || die "no libcudart_static.a in $cuda_root/lib"
  # the shared cudart has only a versioned name in the wheel: give CMake's FindCUDAToolkit one
  if [[ ! -e "$cuda_root/lib/libcudart.so" ]]; then
    so="$(ls "$cuda_root"/lib/libcudart.so.* 2>/dev/null | head -1 || true)"
    [[ -n "$so" ]] && ln -s "$(basename "$so")" "$cuda_root/lib/libcudart.so" && say "made lib/libcudart.so"
  fi
  # nvvm (cicc) must sit at $TOP/nvvm
  [[ -x "$cuda_root/nvvm/bin/cicc" ]] || die "no nvvm/bin/cicc under $cuda_root"
fi

if [[ -n "${CUTLASS_DIR:-}" && -f "${CUTLASS_DIR}/include/cutlass/cutlass.h" ]]; then
  cutlass_inc="${CUTLASS_DIR}/include"
  cutlass_util="${CUTLASS_DIR}/tools/util/include"
else
  cutlass_inc="$target/cutlass_library/source/include"
  cutlass_util="$target/cutlass_library/source/tools/util/include"
fi
[[ -f "$cutlass_inc/cutlass/cutlass.h" ]] || die "no CUTLASS headers at $cutlass_inc"

ver="$("$nvcc" --version | tail -n 2 | head -n 1)" || die "$nvcc --version failed"
say "nvcc: $nvcc ($ver)"
say "CUTLASS: $cutlass_inc"
echo "LMOE_CUDA_ROOT=$cuda_root"
echo "LMOE_CUDA_NVCC=$nvcc"
echo "LMOE_CUTLASS_INCLUDE=$cutlass_inc"
echo "LMOE_CUTLASS_UTIL_INCLUDE=$cutlass_util"
