#!/usr/bin/env python3
"""trace_report.py TRACE_JSONL [--width 100] - reads the decode block traces of the bundle's
`trace` step (lmoe_cuda_bench --trace, "kind":"trace" lines) and prints, per traced call, a
timeline: for every microsecond the blocks working (inputs ready, not yet done) per launch, and
the microseconds in which fewer than a quarter of the call's peak were working (the weight stream
is then mostly idle). Runs on any machine with Python 3; reads only the file."""
import argparse
import json
import sys


def report(call, width):
    kernels = call.get("kernels", [])
    if not kernels:
        print(f"T={call.get('T')} {call.get('decode_mode')}: no blocks traced")
        return
    nbins = max(len(k["working"]) for k in kernels)
    total = [sum(k["working"][b] for k in kernels if b < len(k["working"])) for b in range(nbins)]
    peak = max(total) or 1.0
    low = [b for b, v in enumerate(total) if v < 0.25 * peak]
    print(f"T={call['T']} {call['decode_mode']}: {call['span_us']:.1f} us, peak {peak:.0f} blocks working; "
          f"{len(low)} of {nbins} us below a quarter of the peak")
    for k in kernels:
        print(f"  {k['launch']:<14} blocks {k['blocks']:>6}  {k['start_us']:8.2f} .. {k['end_us']:8.2f} us  "
              f"mean block {k['mean_block_us']:.2f} us, mean wait {k.get('mean_wait_us', 0.0):.2f} us")
    # one row per launch, one column per bin group: a digit 0-9 for the share of the peak working
    step = max(1, (nbins + width - 1) // width)
    cols = (nbins + step - 1) // step
    print(f"  timeline ({step} us per column; digit = blocks working in that launch, in tenths of the call's peak)")
    for k in kernels:
        row = []
        for c in range(cols):
            seg = k["working"][c * step:(c + 1) * step]
            v = max(seg) if seg else 0.0
            row.append(" " if v <= 0 else str(min(9, int(10 * v / peak))))
        print(f"  {k['launch']:<14} |{''.join(row)}|")
    row = []
    for c in range(cols):
        seg = total[c * step:(c + 1) * step]
        v = min(seg) if seg else 0.0
        row.append(str(min(9, int(10 * v / peak))))
    print(f"  {'all (min)':<14} |{''.join(row)}|")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace_jsonl")
    ap.add_argument("--width", type=int, default=100)
    a = ap.parse_args()
    n = 0
    with open(a.trace_jsonl) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            call = json.loads(line)
            if call.get("kind") != "trace":
                continue
            report(call, a.width)
            n += 1
    if n == 0:
        print("no trace lines", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
