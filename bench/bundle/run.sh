#!/usr/bin/env bash
# run.sh OUTDIR - the GPU checks of the LatentMoE bundle (made by bench/bundle/make-bundle.sh).
# Needs only an NVIDIA driver (Hopper GPU, sm_90) and coreutils: Java comes with the bundle.
#
# Steps (LMOE_BUNDLE_STEPS, default all, in this order; the diagnostics trace and ncu last):
#   smi        nvidia-smi, OS, glibc, library dependencies            -> native.log
#   quick      bin/lmoe_cuda_test quick (every kernel vs liblatentmoe.so, graphs, determinism)
#   super      bin/lmoe_cuda_test super (one full Super-shape layer, CPU vs CUDA)
#   bench      bin/lmoe_cuda_bench --reps 20 (Super, T=1..8192; stage breakdown; experts stage against
#              cuBLASLt, interleaved, T = 4096, 8192)                -> native.log, bench-native.jsonl
#   quant      bin/lmoe_cuda_bench --dtype fp8, nvfp4, w8a8 (Super, device-made weights, T=1,4,16,64,4096,
#              no stage breakdown): each run's T = 1 decode GB/s against its own d2d copy bandwidth
#              -> native.log, appended to bench-native.jsonl (lines with "dtype")
#   variants   bin/lmoe_cuda_test quick once per opt-in kernel set, whatever tune.sh chose: streams
#              off + 256-wide FC1 tiles; LMOE_CUDA_DEC_STREAM=8 + _DENSE=4; =4 + _DENSE=8;
#              LMOE_CUDA_FC1_TILE=192; and the Java CudaGraphedLayerTest with the streams on -> native.log
#   memcheck   compute-sanitizer memcheck on `lmoe_cuda_test sanitize`                 -> sanitizer.log
#   racecheck  compute-sanitizer racecheck on `lmoe_cuda_test sanitize-small` (skipped, with a
#              note, when the executable has no such mode: the full `sanitize` takes minutes)
#   java-tests the Java GPU tests (JUnit console, -Dlatentmoe.test.backend=cuda,
#              -Dlatentmoe.test.require=true: a missing GPU fails them, never skips) -> java-tests.log
#   java-bench latentmoe bench --backend cuda --json OUTDIR/bench-cuda.json       -> bench.log
#   java-quant latentmoe bench --backend cuda --dtype fp8, then --dtype nvfp4 (host-built weights uploaded
#              as stored; T = 1,4,16,64; copy ceiling, no GEMM shapes) --json OUTDIR/bench-quant-*.json -> bench.log
#   java-graph latentmoe bench --backend cuda --graph-overhead --json OUTDIR/graph.json: host time
#              per CUDA graph replay call from Java (target <= 2 us) against the raw launch, bytes
#              allocated per call (must be 0), GPU time per layer call with and without graphs
#              (Super, T = 1, 4, 16, 64; graphed and plain outputs must be bitwise equal)  -> bench.log
#   peers      python3 peers/peers_gpu.py --json OUTDIR/peers.json, when the bundle has that
#              script and python3 can import torch; skipped otherwise              -> bench.log
#   java-iso   latentmoe bench --iso --backend cuda --json OUTDIR/iso-cuda.json: standard MoE vs
#              l-MoE_eff vs l-MoE_acc at equal weight bytes, T=1..4096, weights made on the GPU -> bench.log
#   trace      bin/lmoe_cuda_bench --trace, T = 1, 4, 16: per decode launch its blocks' start/end
#              and blocks in flight per microsecond (both decode forms, then the streamed kernels)
#              -> native.log (tables), trace.jsonl
#   ncu        Nsight Compute, when present: per kernel duration, DRAM bytes read and DRAM throughput
#              (% of peak) of one T = 1 decode forward (defaults, then the streamed kernels) and one
#              T = 8192 forward; kernels serialised, clocks not locked                 -> ncu.csv
# OUTDIR gets at most 14 files: summary.txt, native.log, bench-native.jsonl, sanitizer.log,
# java-tests.log, bench.log, bench-cuda.json, bench-quant-fp8.json, bench-quant-nvfp4.json,
# graph.json, peers.json, iso-cuda.json, trace.jsonl, ncu.csv. summary.txt has one line per step (PASS / FAIL / TIMEOUT / SKIP / NO-GPU, seconds,
# note) and a final RESULT line.
#
# Environment: LMOE_BUNDLE_BUDGET (seconds for the whole run, default 330: a step that would start
# with less than 15 s left is skipped), per-step limits LMOE_T_QUICK (60, also per variants run)
# LMOE_T_SUPER (90) LMOE_T_BENCH (60, also per quant run) LMOE_T_MEMCHECK (90) LMOE_T_RACECHECK (90) LMOE_T_JAVA_TESTS (180)
# LMOE_T_JAVA_BENCH (150) LMOE_T_JAVA_GRAPH (150) LMOE_T_PEERS (120) LMOE_T_JAVA_ISO (120)
# LMOE_T_TRACE (60, per run) LMOE_T_NCU (120, per run); NCU (path of ncu);
# LMOE_BENCH_ARGS (extra arguments for the Java bench, e.g. "--tokens 1,64"); LMOE_GRAPH_ARGS (extra
# arguments for java-graph, e.g. "--calls 5000"); LMOE_ISO_ARGS (extra arguments for java-iso, e.g.
# "--preset super"); LMOE_JAVA_OPTS (extra JVM options); COMPUTE_SANITIZER (path).
# Exit status: 0 when every step passed (or was skipped for a reason that is not a failure),
# 1 when a step failed or timed out, 2 when there is no usable GPU here.
set -uo pipefail

B="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:?usage: run.sh OUTDIR}"
mkdir -p "$out" || { echo "run.sh: cannot create $out" >&2; exit 1; }
out="$(cd "$out" && pwd)"
# the diagnostics (trace, ncu) last: a run short of budget skips them first
steps="${LMOE_BUNDLE_STEPS:-smi quick super bench quant variants memcheck racecheck java-tests java-bench java-quant java-graph peers java-iso trace ncu}"
budget="${LMOE_BUNDLE_BUDGET:-330}"
summary="$out/summary.txt"
native_log="$out/native.log"
san_log="$out/sanitizer.log"
jt_log="$out/java-tests.log"
bench_log="$out/bench.log"
: > "$summary"; : > "$native_log"; : > "$san_log"; : > "$jt_log"; : > "$bench_log"
t0=$SECONDS
JAVA="$B/jre/bin/java"
JUNIT="$B/jars/junit-platform-console-standalone-1.14.1.jar"
CP=""
for j in "$B"/jars/latentmoe-*.jar; do CP="${CP:+$CP:}$j"; done
JOPTS=(--enable-native-access=ALL-UNNAMED "-Dlatentmoe.native.dir=$B/lib")
# shellcheck disable=SC2206
[[ -n "${LMOE_JAVA_OPTS:-}" ]] && JOPTS+=(${LMOE_JAVA_OPTS})

say() { echo "[bundle $(date +%H:%M:%S) +$((SECONDS - t0))s] $*"; }
results=()
failed=0
record() { # step status seconds note
  local line
  line="$(printf '%-11s %-8s %5s s  %s' "$1" "$2" "$3" "$4")"
  results+=("$line")
  echo "$line" >> "$summary"
  say "step $1: $2 ($3 s) $4"
  case "$2" in FAIL|TIMEOUT) failed=1 ;; esac
}

# GPU present? (decides NO-GPU vs FAIL wording; every step still runs, to show what it says)
gpu=0
gpu_note="nvidia-smi not found"
if command -v nvidia-smi >/dev/null 2>&1; then
  if nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    gpu=1; gpu_note="$(nvidia-smi -L 2>/dev/null | head -n1)"
  else
    gpu_note="nvidia-smi lists no GPU"
  fi
fi
if [[ $gpu == 0 ]]; then
  say "NO GPU here ($gpu_note): every GPU step below will report no GPU / fail; this run only shows that the bundle starts"
fi

last_rc=0
last_secs=0
last_status=""
run_step() { # name log timeout cmd...  (sets last_rc, last_secs, last_status)
  local name="$1" log="$2" lim="$3"; shift 3
  local left=$((budget - (SECONDS - t0)))
  if (( left < 15 )); then
    last_status="SKIP"; last_rc=0; last_secs=0
    echo "==== step $name skipped: the run's budget (${budget}s) is spent" >> "$log"
    return 0
  fi
  (( lim > left )) && lim=$left
  say "step $name (limit ${lim}s): $*"
  echo "==== step $name $(date -u +%H:%M:%S) (limit ${lim}s): $*" >> "$log"
  local s=$SECONDS
  timeout --signal=INT --kill-after=20 "$lim" "$@" 2>&1 | tee -a "$log"
  last_rc=${PIPESTATUS[0]}
  last_secs=$((SECONDS - s))
  echo "==== step $name: rc=$last_rc in ${last_secs}s" >> "$log"
  if [[ $last_rc == 0 ]]; then last_status=PASS
  elif [[ $last_rc == 124 || $last_rc == 137 ]]; then last_status=TIMEOUT
  else last_status=FAIL; fi
}
sanitizer="${COMPUTE_SANITIZER:-}"
if [[ -z "$sanitizer" ]]; then
  sanitizer="$(command -v compute-sanitizer || true)"
  for c in "${CUDA_HOME:-/nonexistent}/bin/compute-sanitizer" /usr/local/cuda/bin/compute-sanitizer; do
    [[ -z "$sanitizer" && -x "$c" ]] && sanitizer="$c"
  done
fi

for s in $steps; do
  case "$s" in
    smi)
      {
        echo "==== smi"
        nvidia-smi 2>&1 || echo "nvidia-smi: not available"
        echo "os: $(uname -srm); $(ldd --version 2>&1 | head -n1)"
        echo "bundle: $(sed -n '2,4p' "$B/BUNDLE.txt" 2>/dev/null | tr '\n' ' ')"
        echo "ldd lib/liblatentmoe_cuda.so:"; ldd "$B/lib/liblatentmoe_cuda.so" 2>&1
        echo "ldd bin/lmoe_cuda_test:"; ldd "$B/bin/lmoe_cuda_test" 2>&1
        echo "java: $("$JAVA" -version 2>&1 | tr '\n' ' ')"
      } >> "$native_log" 2>&1
      head -n 20 "$native_log"
      if ldd "$B/bin/lmoe_cuda_test" 2>&1 | grep -q "not found"; then
        record smi FAIL 0 "a shared library of bin/lmoe_cuda_test is missing (see native.log)"
      elif [[ $gpu == 1 ]]; then record smi PASS 0 "$gpu_note"
      else record smi NO-GPU 0 "$gpu_note"; fi
      ;;
    quick|super)
      if [[ $s == quick ]]; then lim="${LMOE_T_QUICK:-60}"; else lim="${LMOE_T_SUPER:-90}"; fi
      run_step "$s" "$native_log" "$lim" "$B/bin/lmoe_cuda_test" "$s"
      st="$last_status"
      # a native test that finds no GPU prints SKIPPED and exits 0: not a pass
      if [[ $st == PASS ]] && tail -n 30 "$native_log" | grep -q "SKIPPED"; then st=NO-GPU; fi
      [[ $gpu == 0 && $st == FAIL ]] && st=NO-GPU
      note="$(tail -n 40 "$native_log" | grep -E '[0-9]+ passed, [0-9]+ failed|SKIPPED' | tail -n1)"
      [[ $st == NO-GPU ]] && note="${note:-no GPU}"
      record "$s" "$st" "$last_secs" "${note:-rc=$last_rc}"
      ;;
    bench)
      run_step bench "$native_log" "${LMOE_T_BENCH:-60}" "$B/bin/lmoe_cuda_bench" --reps 20
      st="$last_status"
      sed -n '/^==== step bench /,$p' "$native_log" | grep '^{' > "$out/bench-native.jsonl" || true
      n="$(grep -vc '"kind":"skipped"' "$out/bench-native.jsonl" || true)"
      note="$n JSON lines in bench-native.jsonl"
      # the prefill target: experts stage against cuBLASLt, interleaved (T = 8192)
      ev="$(grep '"kind":"experts_vs_cublaslt"' "$out/bench-native.jsonl" | grep '"T":8192' | tail -n1)"
      if [[ -n "$ev" ]]; then
        s8="$(grep -o '"share_of_8192":[0-9.]*' <<< "$ev" | cut -d: -f2)"
        ss="$(grep -o '"share_of_shapes":[0-9.]*' <<< "$ev" | cut -d: -f2)"
        note="$note; experts T=8192: $s8 of cuBLASLt 8192^3, $ss of cuBLASLt at its shapes (interleaved)"
      fi
      if [[ $st == PASS && $n == 0 ]]; then
        st=FAIL; note="no measurements: $(grep -m1 -o '"reason":"[^"]*"' "$out/bench-native.jsonl" || echo 'no JSON lines')"
      fi
      [[ $gpu == 0 && $st == FAIL ]] && st=NO-GPU
      record bench "$st" "$last_secs" "$note"
      ;;
    quant)
      # FP8 / NVFP4 / W8A8 weights: the T = 1 decode forward against the same run's d2d copy
      st=PASS; secs=0; notes=()
      for dt in fp8 nvfp4 w8a8; do
        start="$(wc -l < "$native_log")"
        run_step quant "$native_log" "${LMOE_T_BENCH:-60}" "$B/bin/lmoe_cuda_bench" --dtype "$dt" --reps 20 \
          --tokens 1,4,16,64,4096 --decode auto --no-stages
        secs=$((secs + last_secs))
        [[ $last_status == SKIP ]] && { [[ $st == PASS ]] && st=SKIP; notes+=("$dt: budget spent"); continue; }
        [[ $last_status != PASS ]] && st="$last_status"
        lines="$(tail -n +"$((start + 1))" "$native_log" | grep '^{' || true)"
        [[ -n "$lines" ]] && printf '%s\n' "$lines" >> "$out/bench-native.jsonl"
        copy="$(grep '"kind":"d2d_copy"' <<< "$lines" | grep -o '"gbps_rw":[0-9.]*' | cut -d: -f2 | tail -n1)"
        t1="$(grep '"kind":"forward"' <<< "$lines" | grep '"T":1,' | tail -n1)"
        gb="$(grep -o '"gbps":[0-9.]*' <<< "$t1" | cut -d: -f2)"
        ms="$(grep -o '"median_ms":[0-9.]*' <<< "$t1" | cut -d: -f2)"
        path="$(grep -o '"path":"[a-z]*"' <<< "$t1" | cut -d'"' -f4)"
        if [[ -n "$gb" && -n "$copy" ]]; then
          notes+=("$dt T=1 ($path) $ms ms, $gb GB/s = $(awk -v a="$gb" -v b="$copy" 'BEGIN{printf "%.0f", 100*a/b}')% of d2d $copy GB/s")
        else
          notes+=("$dt: no T=1 line (rc=$last_rc)")
          [[ $st == PASS ]] && st=FAIL
        fi
      done
      [[ $gpu == 0 && $st == FAIL ]] && st=NO-GPU
      record quant "$st" "$secs" "$(printf '%s; ' "${notes[@]}")"
      ;;
    java-quant)
      st=PASS; secs=0; notes=()
      for dt in fp8 nvfp4; do
        f="$out/bench-quant-$dt.json"
        rm -f "$f"
        run_step java-quant "$bench_log" "${LMOE_T_JAVA_BENCH:-150}" \
          "$JAVA" "${JOPTS[@]}" -cp "$CP" dev.latentmoe.bench.Main bench --backend cuda --dtype "$dt" \
          --tokens 1,4,16,64 --gemm-shape-tokens "" --json "$f"
        secs=$((secs + last_secs))
        [[ $last_status == SKIP ]] && { [[ $st == PASS ]] && st=SKIP; notes+=("$dt: budget spent"); continue; }
        [[ $last_status != PASS ]] && st="$last_status"
        if [[ -s "$f" ]]; then
          r1="$(grep '"tokens": 1,' "$f" | head -n1)"
          notes+=("$dt T=1 $(grep -o '"median_ms": [0-9.]*' <<< "$r1" | cut -d' ' -f2) ms, $(grep -o '"achieved_gbps": [0-9.]*' <<< "$r1" | cut -d' ' -f2) GB/s, ratio to d2d copy $(grep -o '"ratio": [0-9.e-]*' <<< "$r1" | cut -d' ' -f2)")
        else
          notes+=("$dt: no JSON written")
          [[ $st == PASS ]] && st=FAIL
        fi
      done
      [[ $gpu == 0 && $st == FAIL ]] && st=NO-GPU
      record java-quant "$st" "$secs" "$(printf '%s; ' "${notes[@]}")"
      ;;
    variants)
      st=PASS; secs=0; notes=()
      for envs in "LMOE_CUDA_DEC_STREAM=0 LMOE_CUDA_DEC_STREAM_DENSE=0 LMOE_CUDA_FC1_TILE=256" \
                  "LMOE_CUDA_DEC_STREAM=8 LMOE_CUDA_DEC_STREAM_DENSE=4" \
                  "LMOE_CUDA_DEC_STREAM=4 LMOE_CUDA_DEC_STREAM_DENSE=8" "LMOE_CUDA_FC1_TILE=192"; do
        # shellcheck disable=SC2086
        run_step variants "$native_log" "${LMOE_T_QUICK:-60}" env $envs "$B/bin/lmoe_cuda_test" quick
        secs=$((secs + last_secs))
        [[ $last_status == SKIP ]] && { st=SKIP; notes+=("$envs: budget spent"); continue; }
        [[ $last_status != PASS && $st != FAIL ]] && st="$last_status"
        [[ $last_status == FAIL ]] && st=FAIL
        notes+=("$envs: $(tail -n 40 "$native_log" | grep -oE '[0-9]+ passed, [0-9]+ failed|SKIPPED' | tail -n1)")
      done
      # the streamed kernels through the Java graph path, in a fresh JVM: their first launch (which
      # sets the shared-memory attribute) may happen inside a graph capture
      run_step variants "$native_log" "${LMOE_T_JAVA_TESTS:-180}" env LMOE_CUDA_DEC_STREAM=8 LMOE_CUDA_DEC_STREAM_DENSE=4 \
        "$JAVA" "${JOPTS[@]}" -Dlatentmoe.test.backend=cuda -Dlatentmoe.test.require=true \
        -jar "$JUNIT" execute --disable-banner --details=summary --fail-if-no-tests --class-path "$CP" \
        --select-class dev.latentmoe.kernels.CudaGraphedLayerTest
      secs=$((secs + last_secs))
      [[ $last_status != PASS && $last_status != SKIP && $st != FAIL ]] && st="$last_status"
      notes+=("java CudaGraphedLayerTest with streams: $(tail -n 30 "$native_log" | grep -oE '[0-9]+ tests (successful|failed)' | paste -sd, -)")
      if [[ $st == PASS ]] && tail -n 30 "$native_log" | grep -q "SKIPPED"; then st=NO-GPU; fi
      [[ $gpu == 0 && $st == FAIL ]] && st=NO-GPU
      record variants "$st" "$secs" "$(printf '%s; ' "${notes[@]}")"
      ;;
    trace)
      run_step trace "$native_log" "${LMOE_T_TRACE:-60}" "$B/bin/lmoe_cuda_bench" --tokens 1,4,16 --reps 20 \
        --decode variants --no-stages --trace
      st="$last_status"; secs=$last_secs
      run_step trace "$native_log" "${LMOE_T_TRACE:-60}" env LMOE_CUDA_DEC_STREAM=8 LMOE_CUDA_DEC_STREAM_DENSE=4 "$B/bin/lmoe_cuda_bench" \
        --tokens 1,4,16 --reps 20 --decode staged --no-stages --trace
      secs=$((secs + last_secs))
      [[ $st == PASS ]] && st="$last_status"
      sed -n '/^==== step trace /,$p' "$native_log" | grep '"kind":"trace"' > "$out/trace.jsonl" || true
      n="$(wc -l < "$out/trace.jsonl")"
      note="$n traced calls in trace.jsonl"
      [[ $st == PASS && $n == 0 ]] && { st=FAIL; note="no trace lines"; }
      [[ $gpu == 0 && $st == FAIL ]] && st=NO-GPU
      record trace "$st" "$secs" "$note"
      ;;
    ncu)
      ncu="${NCU:-$(command -v ncu || true)}"
      for c in "${CUDA_HOME:-/nonexistent}/bin/ncu" /usr/local/cuda/bin/ncu; do
        [[ -z "$ncu" && -x "$c" ]] && ncu="$c"
      done
      if [[ -z "$ncu" ]]; then
        echo "==== step ncu skipped: no ncu (PATH, \$CUDA_HOME/bin, /usr/local/cuda/bin)" >> "$native_log"
        record ncu SKIP 0 "no Nsight Compute (ncu) on this machine (set NCU)"
        continue
      fi
      : > "$out/ncu.csv"
      # only the layer's kernels (not the weight fills); one timed call after the bench's warm-up
      nargs=(--clock-control none --cache-control none --csv -k 'regex:^(?!fill_kernel)'
             --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed)
      st=PASS; secs=0
      for envs in "LMOE_CUDA_DEC_STREAM=0" "LMOE_CUDA_DEC_STREAM=8 LMOE_CUDA_DEC_STREAM_DENSE=4"; do
        toks=1; [[ $envs == "LMOE_CUDA_DEC_STREAM=0" ]] && toks=1,8192
        # shellcheck disable=SC2086
        run_step ncu "$native_log" "${LMOE_T_NCU:-120}" env $envs "$ncu" "${nargs[@]}" --log-file "$out/ncu-part.csv" \
          "$B/bin/lmoe_cuda_bench" --tokens "$toks" --reps 1 --decode auto --no-stages
        secs=$((secs + last_secs))
        [[ $last_status != PASS ]] && st="$last_status"
        { echo "# $envs tokens $toks"; cat "$out/ncu-part.csv" 2>/dev/null; } >> "$out/ncu.csv"
        rm -f "$out/ncu-part.csv"
      done
      n="$(grep -c 'gpu__time_duration' "$out/ncu.csv" || true)"
      [[ $st == PASS && $n == 0 ]] && st=FAIL
      [[ $gpu == 0 && $st == FAIL ]] && st=NO-GPU
      record ncu "$st" "$secs" "$n kernel durations in ncu.csv"
      ;;
    memcheck|racecheck)
      mode=sanitize
      if [[ $s == racecheck ]]; then
        if grep -qa 'sanitize-small' "$B/bin/lmoe_cuda_test"; then
          mode=sanitize-small
        else
          echo "==== step racecheck skipped: bin/lmoe_cuda_test has no sanitize-small mode (racecheck of the full sanitize mode needs minutes)" >> "$san_log"
          record racecheck SKIP 0 "lmoe_cuda_test has no sanitize-small mode; racecheck of 'sanitize' takes minutes"
          continue
        fi
      fi
      if [[ -z "$sanitizer" ]]; then
        echo "==== step $s skipped: no compute-sanitizer (PATH, \$CUDA_HOME/bin, /usr/local/cuda/bin)" >> "$san_log"
        record "$s" SKIP 0 "no compute-sanitizer on this machine (set COMPUTE_SANITIZER)"
        continue
      fi
      lim_var="LMOE_T_${s^^}"
      run_step "$s" "$san_log" "${!lim_var:-90}" "$sanitizer" --tool "$s" --error-exitcode 9 --print-limit 50 \
        "$B/bin/lmoe_cuda_test" "$mode"
      st="$last_status"
      if [[ $st == PASS ]] && tail -n 30 "$san_log" | grep -q "SKIPPED"; then st=NO-GPU; fi
      [[ $gpu == 0 && $st == FAIL ]] && st=NO-GPU
      note="$(tail -n 20 "$san_log" | grep -E 'ERROR SUMMARY' | tail -n1)"
      record "$s" "$st" "$last_secs" "$mode: ${note:-rc=$last_rc}"
      ;;
    java-tests)
      echo "==== java: $("$JAVA" -version 2>&1 | tr '\n' ' ')" >> "$jt_log"
      run_step java-tests "$jt_log" "${LMOE_T_JAVA_TESTS:-180}" \
        "$JAVA" "${JOPTS[@]}" -Dlatentmoe.test.backend=cuda -Dlatentmoe.test.require=true \
        -jar "$JUNIT" execute --disable-banner --details=tree --fail-if-no-tests --class-path "$CP" \
        --select-class dev.latentmoe.kernels.CudaBackendTest --select-class dev.latentmoe.kernels.LayerForwardTest \
        --select-class dev.latentmoe.kernels.KernelStepsTest --select-class dev.latentmoe.kernels.CudaSuperLayerTest \
        --select-class dev.latentmoe.kernels.CudaGraphedLayerTest --select-class dev.latentmoe.kernels.CudaQuantizedLayerTest \
        --select-method 'dev.latentmoe.kernels.CloseDuringCallTest#closingACudaLayerAndItsGraphsWhileThreadsCall' \
        --select-class dev.latentmoe.memory.DeviceArenaTest --select-class dev.latentmoe.memory.cuda.CudaGraphTest
      st="$last_status"
      note="$(grep -Eo '[0-9]+ tests (successful|failed|aborted|skipped)' "$jt_log" | tail -n 4 | sed 's/ tests//' | paste -sd, - | sed 's/,/, /g')"
      [[ $gpu == 0 && $st == FAIL ]] && { st=NO-GPU; note="failures expected without a GPU (-Dlatentmoe.test.require=true): $note"; }
      record java-tests "$st" "$last_secs" "${note:-rc=$last_rc}"
      ;;
    java-bench)
      rm -f "$out/bench-cuda.json"
      # shellcheck disable=SC2086
      run_step java-bench "$bench_log" "${LMOE_T_JAVA_BENCH:-150}" \
        "$JAVA" "${JOPTS[@]}" -cp "$CP" dev.latentmoe.bench.Main bench --backend cuda \
        --json "$out/bench-cuda.json" ${LMOE_BENCH_ARGS:-}
      st="$last_status"
      note="rc=$last_rc"
      if [[ $st == PASS && ! -s "$out/bench-cuda.json" ]]; then st=FAIL; note="no bench-cuda.json written"; fi
      [[ -s "$out/bench-cuda.json" ]] && note="$(grep -c '"tokens"' "$out/bench-cuda.json") rows in bench-cuda.json"
      if [[ $gpu == 0 && $st == FAIL ]]; then st=NO-GPU; note="$(grep -m1 'latentmoe bench' "$bench_log" | cut -c1-200)"; fi
      record java-bench "$st" "$last_secs" "$note"
      ;;
    java-graph)
      rm -f "$out/graph.json"
      # shellcheck disable=SC2086
      run_step java-graph "$bench_log" "${LMOE_T_JAVA_GRAPH:-150}" \
        "$JAVA" "${JOPTS[@]}" -cp "$CP" dev.latentmoe.bench.Main bench --backend cuda --graph-overhead \
        --json "$out/graph.json" ${LMOE_GRAPH_ARGS:-}
      st="$last_status"
      # the run's verdict lines: the replay target and the allocation check
      note="$(sed -n '/^==== step java-graph /,$p' "$bench_log" | grep -E '^(target <=|allocation:)' | paste -sd';' - | sed 's/;/; /')"
      if [[ $st == PASS && ! -s "$out/graph.json" ]]; then st=FAIL; note="no graph.json written"; fi
      if [[ $gpu == 0 && $st == FAIL ]]; then st=NO-GPU; note="$(sed -n '/^==== step java-graph /,$p' "$bench_log" | grep -m1 'latentmoe bench' | cut -c1-200)"; fi
      record java-graph "$st" "$last_secs" "${note:-rc=$last_rc}"
      ;;
    peers)
      if [[ ! -f "$B/peers/peers_gpu.py" ]]; then
        echo "==== step peers skipped: no peers/peers_gpu.py in this bundle" >> "$bench_log"
        record peers SKIP 0 "no GPU peers script (bench/peers/peers_gpu.py) in this bundle"
        continue
      fi
      if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import torch' >/dev/null 2>&1; then
        echo "==== step peers skipped: python3 with torch not found" >> "$bench_log"
        record peers SKIP 0 "no python3 with torch"
        continue
      fi
      run_step peers "$bench_log" "${LMOE_T_PEERS:-120}" python3 "$B/peers/peers_gpu.py" --json "$out/peers.json"
      st="$last_status"
      [[ $gpu == 0 && $st == FAIL ]] && st=NO-GPU
      record peers "$st" "$last_secs" "rc=$last_rc"
      ;;
    java-iso)
      rm -f "$out/iso-cuda.json"
      # shellcheck disable=SC2086
      run_step java-iso "$bench_log" "${LMOE_T_JAVA_ISO:-120}" \
        "$JAVA" "${JOPTS[@]}" -cp "$CP" dev.latentmoe.bench.Main bench --iso --backend cuda \
        --json "$out/iso-cuda.json" ${LMOE_ISO_ARGS:-}
      st="$last_status"
      note="rc=$last_rc"
      if [[ $st == PASS && ! -s "$out/iso-cuda.json" ]]; then st=FAIL; note="no iso-cuda.json written"; fi
      [[ -s "$out/iso-cuda.json" ]] && note="$(grep -c '"variant"' "$out/iso-cuda.json") rows in iso-cuda.json"
      if [[ $gpu == 0 && $st == FAIL ]]; then
        st=NO-GPU; note="$(sed -n '/^==== step java-iso /,$p' "$bench_log" | grep -m1 'latentmoe bench' | cut -c1-200)"
      fi
      record java-iso "$st" "$last_secs" "$note"
      ;;
    *) record "$s" FAIL 0 "unknown step (known: smi quick super bench variants trace ncu memcheck racecheck java-tests java-bench java-graph peers java-iso)" ;;
  esac
done

# Drop empty logs so that OUTDIR holds only what has content.
for f in "$native_log" "$san_log" "$jt_log" "$bench_log" "$out/bench-native.jsonl" "$out/trace.jsonl" "$out/ncu.csv"; do
  [[ -f "$f" && ! -s "$f" ]] && rm -f "$f"
done

np=0; nf=0; ns=0; ng=0
for l in "${results[@]}"; do
  case "$(awk '{print $2}' <<< "$l")" in
    PASS) np=$((np + 1)) ;; SKIP) ns=$((ns + 1)) ;; NO-GPU) ng=$((ng + 1)) ;; *) nf=$((nf + 1)) ;;
  esac
done
if [[ $gpu == 0 ]]; then
  verdict="NO-GPU"; rc=2
elif [[ $failed == 1 || $nf -gt 0 ]]; then
  verdict="FAIL"; rc=1
else
  verdict="PASS"; rc=0
fi
{
  echo
  echo "RESULT: $verdict: $np passed, $nf failed, $ns skipped, $ng without a GPU, in $((SECONDS - t0)) s ($gpu_note)"
  [[ $gpu == 0 ]] && echo "No GPU here: this run shows only that the bundle starts (runtime, classpath, libraries); run it on an H100/H200."
} >> "$summary"
echo
echo "==== summary ($summary)"
cat "$summary"
exit $rc
