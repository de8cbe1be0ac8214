#!/usr/bin/env bash
# tune.sh OUTDIR - sweeps the CUDA backend's tuning knobs on this GPU (native bench, Super shape)
# and writes OUTDIR/tune.env with the fastest setting, to be sourced before run.sh (so that every
# later step, the tests included, runs with it). The variables are the environment names of the
# lmoe_cuda_tuning fields (latentmoe_cuda.h; read once by native/src/cuda/tuning.cu).
#   decode path (T = 1, 4, 16): LMOE_CUDA_PREFETCH_KB, LMOE_CUDA_FC2_BLOCKS, LMOE_CUDA_DEC_MINB,
#     LMOE_CUDA_PDL; score = sum over T of median /
#     median of the defaults (lower is better); LMOE_CUDA_DECODE_FUSED (one fused task-queue
#     kernel instead of five chained launches); LMOE_CUDA_DEC_STREAM, LMOE_CUDA_DEC_STREAM_DENSE
#     (persistent FC1/FC2, resp. dense launches streaming through a cp.async ring);
#   prefill (experts stage at T = 4096, 8192): LMOE_CUDA_FC1_TILE (128x192 FC1 tiles instead of
#     128x256); taken only when at least 2% faster (the T = 8192 medians spread by more than that).
# A configuration other than the defaults is taken only after `lmoe_cuda_test quick` passes with
# it (else the next best): a wrong but fast variant never reaches the rest of the run.
# Every run's JSON lines go to OUTDIR/tune.jsonl. The defaults compiled into the library are the
# first configuration of each list.
set -uo pipefail
B="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:?usage: tune.sh OUTDIR}"
mkdir -p "$out"
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
bench="$B/bin/lmoe_cuda_bench"
: > "$out/tune.jsonl"
run() { # label env... -- args...
  local label="$1"; shift
  local envs=()
  while [[ "$1" != "--" ]]; do envs+=("$1"); shift; done
  shift
  env "${envs[@]}" timeout 60 "$bench" "$@" 2>&1 | grep '^{' | sed "s/^{/{\"tune\":\"$label\",/" >> "$out/tune.jsonl"
}
# (run6 on an H200: prefetch 16-64 KB, 16 FC2 blocks per SM and 3 blocks per SM for FC1/FC2 all
# lost to the defaults by 2-9% (score 3.065-3.261 against 3.000); those rows are gone)
decode_cfgs=(
  "LMOE_CUDA_PREFETCH_KB=0 LMOE_CUDA_FC2_BLOCKS=4 LMOE_CUDA_DEC_MINB=2 LMOE_CUDA_PDL=1 LMOE_CUDA_DECODE_FUSED=0"
  "LMOE_CUDA_PREFETCH_KB=0 LMOE_CUDA_FC2_BLOCKS=8 LMOE_CUDA_DEC_MINB=3 LMOE_CUDA_PDL=1 LMOE_CUDA_DECODE_FUSED=0"
  "LMOE_CUDA_PREFETCH_KB=32 LMOE_CUDA_FC2_BLOCKS=4 LMOE_CUDA_DEC_MINB=2 LMOE_CUDA_PDL=1 LMOE_CUDA_DECODE_FUSED=0"
  "LMOE_CUDA_PREFETCH_KB=0 LMOE_CUDA_FC2_BLOCKS=4 LMOE_CUDA_DEC_MINB=2 LMOE_CUDA_PDL=0 LMOE_CUDA_DECODE_FUSED=0"
  "LMOE_CUDA_PREFETCH_KB=0 LMOE_CUDA_FC2_BLOCKS=4 LMOE_CUDA_DEC_MINB=2 LMOE_CUDA_PDL=1 LMOE_CUDA_DECODE_FUSED=1"
  "LMOE_CUDA_PREFETCH_KB=0 LMOE_CUDA_FC2_BLOCKS=4 LMOE_CUDA_DEC_MINB=2 LMOE_CUDA_PDL=1 LMOE_CUDA_DECODE_FUSED=0 LMOE_CUDA_DEC_STREAM=8"
  "LMOE_CUDA_PREFETCH_KB=0 LMOE_CUDA_FC2_BLOCKS=4 LMOE_CUDA_DEC_MINB=2 LMOE_CUDA_PDL=1 LMOE_CUDA_DECODE_FUSED=0 LMOE_CUDA_DEC_STREAM=4"
  "LMOE_CUDA_PREFETCH_KB=0 LMOE_CUDA_FC2_BLOCKS=4 LMOE_CUDA_DEC_MINB=2 LMOE_CUDA_PDL=1 LMOE_CUDA_DECODE_FUSED=0 LMOE_CUDA_DEC_STREAM_DENSE=4"
  "LMOE_CUDA_PREFETCH_KB=0 LMOE_CUDA_FC2_BLOCKS=4 LMOE_CUDA_DEC_MINB=2 LMOE_CUDA_PDL=1 LMOE_CUDA_DECODE_FUSED=0 LMOE_CUDA_DEC_STREAM=8 LMOE_CUDA_DEC_STREAM_DENSE=4"
  "LMOE_CUDA_PREFETCH_KB=0 LMOE_CUDA_FC2_BLOCKS=4 LMOE_CUDA_DEC_MINB=2 LMOE_CUDA_PDL=1 LMOE_CUDA_DECODE_FUSED=0 LMOE_CUDA_DEC_STREAM=8 LMOE_CUDA_DEC_STREAM_DENSE=8"
  "LMOE_CUDA_PREFETCH_KB=0 LMOE_CUDA_FC2_BLOCKS=4 LMOE_CUDA_DEC_MINB=2 LMOE_CUDA_PDL=1 LMOE_CUDA_DECODE_FUSED=0 LMOE_CUDA_DEC_STREAM=4 LMOE_CUDA_DEC_STREAM_DENSE=4"
)
prefill_cfgs=(
  "LMOE_CUDA_FC1_TILE=256"
  "LMOE_CUDA_FC1_TILE=192"
)
i=0
for cfg in "${decode_cfgs[@]}"; do
  # shellcheck disable=SC2086
  run "d$i" $cfg -- --tokens 1,4,16 --reps 30 --decode auto --no-stages
  i=$((i + 1))
done
i=0
for cfg in "${prefill_cfgs[@]}"; do
  # shellcheck disable=SC2086
  run "p$i" $cfg -- --reps 20 --decode off --stages --stage-tokens 4096,8192
  i=$((i + 1))
done
# the two decode forms side by side (not used for the choice; tune.jsonl, "tune":"v")
run "v" -- --tokens 1,2,4,8,16 --reps 30 --decode variants --no-stages
# ranked candidates, one line each: "<label> <env...>", best first
python3 - "$out" "${#decode_cfgs[@]}" "${decode_cfgs[@]}" "${prefill_cfgs[@]}" > "$out/ranked.txt" <<'PY'
import json, sys
out, nd = sys.argv[1], int(sys.argv[2])
dcfgs, pcfgs = sys.argv[3:3 + nd], sys.argv[3 + nd:]
rows = [json.loads(l) for l in open(f"{out}/tune.jsonl") if l.strip()]
def table(prefix, kind, key):
    t = {}
    for r in rows:
        if r.get("kind") == kind and r["tune"].startswith(prefix) and key(r):
            t.setdefault(r["tune"], {})[r["T"]] = r["median_ms"]
    return t
def rank(title, prefix, cfgs, t, margin):
    base = t.get(f"{prefix}0", {})
    scored = []
    print(title, file=sys.stderr)
    for i, cfg in enumerate(cfgs):
        m = t.get(f"{prefix}{i}", {})
        if not base or any(k not in m for k in base):
            print(f"  {prefix}{i}: incomplete  {cfg}", file=sys.stderr); continue
        score = sum(m[k] / base[k] for k in base)
        print(f"  {prefix}{i}: " + "  ".join(f"T={k} {m[k]:.4f}" for k in sorted(m)) +
              f"  score {score:.3f}  {cfg}", file=sys.stderr)
        # the defaults win ties within the margin
        scored.append((score + (0 if i == 0 else margin * len(base)), i))
    return [i for _, i in sorted(scored)] or [0]
dr = rank("decode sweep (median ms at T=1, 4, 16; score = sum of ratios to d0):", "d", dcfgs,
          table("d", "forward", lambda r: True), 0.0)
pr = rank("prefill sweep (experts stage median ms at T=4096, 8192; score = sum of ratios to p0;"
          " others need a 2% lead):", "p", pcfgs,
          table("p", "stage", lambda r: r.get("stage") == "experts"), 0.02)
for i in dr: print(f"d{i} {dcfgs[i]}")
for i in pr: print(f"p{i} {pcfgs[i]}")
PY
# the best of each kind that passes the quick tests
chosen=()
for kind in d p; do
  while read -r label envs; do
    [[ $label == ${kind}* ]] || continue
    if [[ $label == ${kind}0 ]]; then chosen+=("$envs"); echo "chosen $label: $envs"; break; fi
    # shellcheck disable=SC2086
    if env $envs timeout 120 "$B/bin/lmoe_cuda_test" quick > "$out/quick-$label.log" 2>&1; then
      chosen+=("$envs"); echo "chosen $label: $envs (quick passed)"; break
    fi
    echo "rejected $label: lmoe_cuda_test quick failed with $envs (see quick-$label.log)"
  done < "$out/ranked.txt"
done
: > "$out/tune.env"
for envs in "${chosen[@]}"; do
  for kv in $envs; do echo "$kv" >> "$out/tune.env"; done
done
