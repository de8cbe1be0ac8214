#!/usr/bin/env bash
# run-gpu.sh OUTDIR - the device-side check of the CUDA backend (H100/H200, no network).
#
# Runs the prebuilt executables from $LMOE_BUILD_DIR (default native/build: carry it, e.g.
# carry=["native/build"]), everything tee'd to OUTDIR:
#   1. nvidia-smi, library/driver info
#   2. lmoe_cuda_test quick         (every kernel + forward vs liblatentmoe.so, graphs, determinism)
#   3. lmoe_cuda_test super         (one full Super-shape layer, CPU vs CUDA)
#   4. lmoe_cuda_bench              (Super shapes, T=1..8192, JSON lines -> OUTDIR/bench.jsonl)
#   5. compute-sanitizer memcheck on `lmoe_cuda_test sanitize` (Super-shape forwards, T=1 and 33,
#      decode + sorted paths) and racecheck on `lmoe_cuda_test sanitize-small` (T=1 and 4 only:
#      racecheck is far slower, T=33 did not finish in 80 s)
# Options (environment):
#   LMOE_REBUILD=1     rebuild with the machine's nvcc first (also done automatically when the
#                      prebuilt test cannot start). Needs CUTLASS headers: carry
#                      .tools/cuda/cutlass_library/source (~27 MB) or set CUTLASS_DIR.
#   LMOE_GPU_STEPS="quick super bench memcheck racecheck"   subset/order of steps
#   LMOE_STEP_TIMEOUT=240   seconds per step
# Exit status: non-zero if any step failed.
set -uo pipefail
out="${1:?usage: run-gpu.sh OUTDIR}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
build="${LMOE_BUILD_DIR:-native/build}"
steps="${LMOE_GPU_STEPS:-quick super bench memcheck racecheck}"
tmo="${LMOE_STEP_TIMEOUT:-240}"
log="$out/run-gpu.log"
say() { echo "[run-gpu $(date +%H:%M:%S)] $*" | tee -a "$log"; }
failed=()

{ nvidia-smi || true; } > "$out/nvidia-smi.txt" 2>&1
say "repo=$repo build=$build steps=[$steps] timeout/step=${tmo}s"
head -20 "$out/nvidia-smi.txt" | tee -a "$log"

rebuild() {
  say "rebuilding with the local nvcc"
  local nvcc
  nvcc="$(command -v nvcc || true)"
  [[ -z "$nvcc" && -x /usr/local/cuda/bin/nvcc ]] && nvcc=/usr/local/cuda/bin/nvcc
  [[ -z "$nvcc" ]] && { say "no nvcc on this machine"; return 1; }
  local cut="${CUTLASS_DIR:-}"
  if [[ -z "$cut" && -f .tools/cuda/cutlass_library/source/include/cutlass/cutlass.h ]]; then
    cut="$repo/.tools/cuda/cutlass_library/source"
  fi
  [[ -z "$cut" ]] && { say "no CUTLASS headers (carry .tools/cuda/cutlass_library/source)"; return 1; }
  build="native/build-gpu"
  gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  cmake -S native -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DLMOE_WITH_CUDA=ON \
    -DLMOE_CUDA_AUTO_INSTALL=OFF -DCMAKE_CUDA_COMPILER="$nvcc" \
    -DLMOE_CUTLASS_INCLUDE="$cut/include" 2>&1 | tee "$out/rebuild.log" | tail -5
  /usr/bin/time -v cmake --build "$build" -j "$(nproc)" >> "$out/rebuild.log" 2>&1
  local rc=$?
  tail -30 "$out/rebuild.log" | tee -a "$log"
  return $rc
}

if [[ "${LMOE_REBUILD:-0}" == 1 ]]; then
  rebuild || { say "rebuild FAILED"; exit 1; }
fi
test_bin="$build/bin/lmoe_cuda_test"
if [[ ! -x "$test_bin" ]]; then
  say "no prebuilt $test_bin"
  rebuild || { say "rebuild FAILED"; exit 1; }
  test_bin="$build/bin/lmoe_cuda_test"
fi
# a loader failure (missing .so, wrong glibc) -> rebuild
if ! ldd "$test_bin" >/dev/null 2>&1 || ldd "$test_bin" | grep -q "not found"; then
  ldd "$test_bin" | tee -a "$log"
  rebuild || { say "rebuild FAILED"; exit 1; }
  test_bin="$build/bin/lmoe_cuda_test"
fi
bench_bin="$build/bin/lmoe_cuda_bench"
ldd "$build/lib/liblatentmoe_cuda.so" 2>&1 | tee -a "$log"

run_step() {  # name cmd...
  local name="$1"; shift
  say "step $name: $*"
  local t0=$SECONDS
  timeout --signal=INT --kill-after=20 "$tmo" "$@" > >(tee "$out/$name.log") 2>&1
  local rc=$?
  say "step $name: rc=$rc in $((SECONDS - t0)) s"
  [[ $rc != 0 ]] && failed+=("$name(rc=$rc)")
  return $rc
}

sanitizer="$(command -v compute-sanitizer || true)"
[[ -z "$sanitizer" && -x /usr/local/cuda/bin/compute-sanitizer ]] && sanitizer=/usr/local/cuda/bin/compute-sanitizer

for s in $steps; do
  case "$s" in
    quick) run_step quick "$test_bin" quick ;;
    super) run_step super "$test_bin" super ;;
    bench)
      run_step bench "$bench_bin" --reps 20
      grep '^{' "$out/bench.log" > "$out/bench.jsonl" || true ;;
    memcheck|racecheck)
      if [[ -z "$sanitizer" ]]; then say "no compute-sanitizer: $s skipped"; failed+=("$s(no sanitizer)"); continue; fi
      smode=sanitize; [[ "$s" == racecheck ]] && smode=sanitize-small
      run_step "$s" "$sanitizer" --tool "$s" --error-exitcode 9 --print-limit 50 "$test_bin" "$smode" ;;
    *) say "unknown step $s" ;;
  esac
done

if [[ ${#failed[@]} -gt 0 ]]; then
  say "FAILED steps: ${failed[*]}"
  exit 1
fi
say "all steps passed"
