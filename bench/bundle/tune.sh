#!/usr/bin/env bash
# tune.sh OUTDIR - sweeps the CUDA backend's tuning knobs on this GPU (native bench, Super shape)
# and writes OUTDIR/tune.env with the fastest setting, to be sourced before run.sh (so that every
# later step, the tests included, runs with it): decode path (T = 1, 4, 16): LMOE_CUDA_PREFETCH_KB,
#     LMOE_CUDA_FC2_BLOCKS, LMOE_CUDA_DEC_MINB, LMOE_CUDA_PDL; score = sum over T of median /
#     median of the defaults (lower is better); LMOE_CUDA_DECODE_FUSED (one fused task-queue
#     kernel instead of five chained launches)
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
decode_cfgs=(
  "LMOE_CUDA_PREFETCH_KB=0 LMOE_CUDA_FC2_BLOCKS=4 LMOE_CUDA_DEC_MINB=2 LMOE_CUDA_PDL=1 LMOE_CUDA_DECODE_FUSED=0"
  "LMOE_CUDA_PREFETCH_KB=32 LMOE_CUDA_FC2_BLOCKS=8 LMOE_CUDA_DEC_MINB=3 LMOE_CUDA_PDL=1 LMOE_CUDA_DECODE_FUSED=0"
  "LMOE_CUDA_PREFETCH_KB=0 LMOE_CUDA_FC2_BLOCKS=8 LMOE_CUDA_DEC_MINB=3 LMOE_CUDA_PDL=1 LMOE_CUDA_DECODE_FUSED=0"
  "LMOE_CUDA_PREFETCH_KB=16 LMOE_CUDA_FC2_BLOCKS=8 LMOE_CUDA_DEC_MINB=3 LMOE_CUDA_PDL=1 LMOE_CUDA_DECODE_FUSED=0"
  "LMOE_CUDA_PREFETCH_KB=64 LMOE_CUDA_FC2_BLOCKS=8 LMOE_CUDA_DEC_MINB=3 LMOE_CUDA_PDL=1 LMOE_CUDA_DECODE_FUSED=0"
  "LMOE_CUDA_PREFETCH_KB=32 LMOE_CUDA_FC2_BLOCKS=4 LMOE_CUDA_DEC_MINB=3 LMOE_CUDA_PDL=1 LMOE_CUDA_DECODE_FUSED=0"
  "LMOE_CUDA_PREFETCH_KB=32 LMOE_CUDA_FC2_BLOCKS=16 LMOE_CUDA_DEC_MINB=3 LMOE_CUDA_PDL=1 LMOE_CUDA_DECODE_FUSED=0"
  "LMOE_CUDA_PREFETCH_KB=32 LMOE_CUDA_FC2_BLOCKS=4 LMOE_CUDA_DEC_MINB=2 LMOE_CUDA_PDL=1 LMOE_CUDA_DECODE_FUSED=0"
  "LMOE_CUDA_PREFETCH_KB=0 LMOE_CUDA_FC2_BLOCKS=4 LMOE_CUDA_DEC_MINB=2 LMOE_CUDA_PDL=0 LMOE_CUDA_DECODE_FUSED=0"
  "LMOE_CUDA_PREFETCH_KB=0 LMOE_CUDA_FC2_BLOCKS=4 LMOE_CUDA_DEC_MINB=2 LMOE_CUDA_PDL=1 LMOE_CUDA_DECODE_FUSED=1"
)
i=0
for cfg in "${decode_cfgs[@]}"; do
  # shellcheck disable=SC2086
  run "d$i" $cfg -- --tokens 1,4,16 --reps 30 --decode auto --no-stages
  i=$((i + 1))
done
# the two decode forms side by side (not used for the choice; tune.jsonl, "tune":"v")
run "v" -- --tokens 1,2,4,8,16 --reps 30 --decode variants --no-stages
python3 - "$out" "${decode_cfgs[@]}" <<'PY'
import json, sys
out, cfgs = sys.argv[1], sys.argv[2:]
rows = [json.loads(l) for l in open(f"{out}/tune.jsonl") if l.strip()]
fwd = {}
for r in rows:
    if r.get("kind") == "forward" and r["tune"].startswith("d"):
        fwd.setdefault(r["tune"], {})[r["T"]] = r["median_ms"]
base = fwd.get("d0", {})
best, best_score = "d0", None
print("decode sweep (median ms at T=1, 4, 16; score = sum of ratios to d0):")
for i, cfg in enumerate(cfgs):
    m = fwd.get(f"d{i}", {})
    if not base or any(t not in m for t in base):
        print(f"  d{i}: incomplete  {cfg}"); continue
    score = sum(m[t] / base[t] for t in base)
    print(f"  d{i}: " + "  ".join(f"T={t} {m[t]:.4f}" for t in sorted(m)) + f"  score {score:.3f}  {cfg}")
    if best_score is None or score < best_score:
        best, best_score = f"d{i}", score
chosen = cfgs[int(best[1:])]
print("chosen:", chosen)
with open(f"{out}/tune.env", "w") as f:
    for kv in chosen.split():
        f.write(kv + "\n")
PY
