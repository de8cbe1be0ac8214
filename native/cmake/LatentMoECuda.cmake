# LatentMoECuda.cmake - toolchain resolution for the CUDA backend (included by src/cuda).
#
# Finds nvcc and the CUTLASS headers, in this order:
#   nvcc:    -DCMAKE_CUDA_COMPILER=..., $CUDACXX, $CUDAToolkit_ROOT/bin/nvcc, $CUDA_HOME/bin/nvcc,
#            nvcc on PATH, <repo>/.tools/cuda/nvidia/cu13/bin/nvcc (pinned wheels)
#   CUTLASS: -DLMOE_CUTLASS_INCLUDE=..., $CUTLASS_DIR/include, <repo>/.tools/cuda (wheel)
# When neither is there and LMOE_CUDA_AUTO_INSTALL is ON (default), it runs
# cmake/install-cuda-toolchain.sh (pip-installs the pinned wheels into <repo>/.tools/cuda).
# Must run before enable_language(CUDA).

get_filename_component(LMOE_REPO_ROOT "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
set(LMOE_CUDA_TOOLS_DIR "${LMOE_REPO_ROOT}/.tools/cuda" CACHE PATH "pinned CUDA wheels prefix")
option(LMOE_CUDA_AUTO_INSTALL "pip-install the pinned CUDA toolchain when none is found" ON)
set(LMOE_CUDA_GENCODE "-gencode=arch=compute_90a,code=sm_90a" CACHE STRING "nvcc -gencode flags")

set(_lmoe_wheel_nvcc "${LMOE_CUDA_TOOLS_DIR}/nvidia/cu13/bin/nvcc")
set(_lmoe_wheel_cutlass "${LMOE_CUDA_TOOLS_DIR}/cutlass_library/source/include")

function(_lmoe_run_installer)
  if(NOT LMOE_CUDA_AUTO_INSTALL)
    message(FATAL_ERROR "LatentMoE CUDA: no CUDA toolkit/CUTLASS found and LMOE_CUDA_AUTO_INSTALL=OFF; "
                        "run native/cmake/install-cuda-toolchain.sh")
  endif()
  message(STATUS "LatentMoE CUDA: running install-cuda-toolchain.sh")
  execute_process(
    COMMAND bash "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/install-cuda-toolchain.sh"
    RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "LatentMoE CUDA: install-cuda-toolchain.sh failed:\n${_err}")
  endif()
endfunction()

if(NOT CMAKE_CUDA_COMPILER)
  set(_nvcc "")
  if(DEFINED ENV{CUDACXX} AND EXISTS "$ENV{CUDACXX}")
    set(_nvcc "$ENV{CUDACXX}")
  elseif(DEFINED ENV{CUDAToolkit_ROOT} AND EXISTS "$ENV{CUDAToolkit_ROOT}/bin/nvcc")
    set(_nvcc "$ENV{CUDAToolkit_ROOT}/bin/nvcc")
  elseif(DEFINED ENV{CUDA_HOME} AND EXISTS "$ENV{CUDA_HOME}/bin/nvcc")
    set(_nvcc "$ENV{CUDA_HOME}/bin/nvcc")
  else()
    find_program(_lmoe_path_nvcc nvcc)
    if(_lmoe_path_nvcc)
      set(_nvcc "${_lmoe_path_nvcc}")
    else()
      if(NOT EXISTS "${_lmoe_wheel_nvcc}")
        _lmoe_run_installer()
      endif()
      set(_nvcc "${_lmoe_wheel_nvcc}")
    endif()
  endif()
  set(CMAKE_CUDA_COMPILER "${_nvcc}" CACHE FILEPATH "nvcc" FORCE)
endif()
message(STATUS "LatentMoE CUDA: nvcc = ${CMAKE_CUDA_COMPILER}")

if(NOT LMOE_CUTLASS_INCLUDE)
  if(DEFINED ENV{CUTLASS_DIR} AND EXISTS "$ENV{CUTLASS_DIR}/include/cutlass/cutlass.h")
    set(_inc "$ENV{CUTLASS_DIR}/include")
  else()
    if(NOT EXISTS "${_lmoe_wheel_cutlass}/cutlass/cutlass.h")
      _lmoe_run_installer()
    endif()
    set(_inc "${_lmoe_wheel_cutlass}")
  endif()
  set(LMOE_CUTLASS_INCLUDE "${_inc}" CACHE PATH "CUTLASS include directory" FORCE)
endif()
if(NOT EXISTS "${LMOE_CUTLASS_INCLUDE}/cutlass/cutlass.h")
  message(FATAL_ERROR "LatentMoE CUDA: no cutlass/cutlass.h under LMOE_CUTLASS_INCLUDE=${LMOE_CUTLASS_INCLUDE}")
endif()
get_filename_component(_cutlass_root "${LMOE_CUTLASS_INCLUDE}/.." ABSOLUTE)
set(LMOE_CUTLASS_UTIL_INCLUDE "${_cutlass_root}/tools/util/include" CACHE PATH "CUTLASS tools/util/include")
message(STATUS "LatentMoE CUDA: CUTLASS = ${LMOE_CUTLASS_INCLUDE}")

# Architectures are given explicitly by LMOE_CUDA_GENCODE (sm_90a needs the "a" suffix).
set(CMAKE_CUDA_ARCHITECTURES OFF)
set(CMAKE_CUDA_RUNTIME_LIBRARY Static)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
find_program(LMOE_CCACHE_CUDA ccache)
if(LMOE_CCACHE_CUDA)
  set(CMAKE_CUDA_COMPILER_LAUNCHER "${LMOE_CCACHE_CUDA}")
endif()
