#!/usr/bin/env python3
"""Which CPU ISA paths the native tests ran, and which they skipped because this CPU lacks them.

Usage: isa_summary.py BUILD_DIR JUNIT_XML [--out FILE] [--require LIST]
       isa_summary.py --self-test

A ctest test belongs to ISA path X when it carries the label "isa=X" (native/CMakeLists.txt gives
every per-ISA kernel test one), so a new ISA path (arch/<isa>.cpp and its tests) is reported as soon
as its tests are labelled; nothing here names an ISA. The tests' labels come from
`ctest --show-only=json-v1`, their results from `ctest --output-junit` (a skip is exit code 77: the
CPU lacks the ISA). Prints one summary line, and a loud banner when a path was not tested; --out
writes the summary line to FILE (the launcher repeats it at the end of `./latentmoe test`).
--require (or LATENTMOE_REQUIRE_ISAS): a comma-separated list of ISA paths that must have been
tested, or "all"; exit status 3 when one was skipped or has no tests. Exit status 2: bad input.
"""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

LABEL = "isa="


def labels_from_ctest(build_dir):
    out = subprocess.run(["ctest", "--test-dir", build_dir, "--show-only=json-v1"], capture_output=True,
                         text=True, check=True).stdout
    return labels_from_json(out)


def labels_from_json(text):
    """{test name: [isa, ...]} for the tests with an isa= label."""
    isas = {}
    for t in json.loads(text).get("tests", []):
        for p in t.get("properties", []):
            if p.get("name") == "LABELS":
                for label in p.get("value", []):
                    if label.startswith(LABEL):
                        isas.setdefault(t["name"], []).append(label[len(LABEL):])
    return isas


def results_from_junit(text):
    """{test name: "passed" | "failed" | "skipped" | "not run"} from ctest's JUnit file."""
    out = {}
    for case in ET.fromstring(text).iter("testcase"):
        status = case.get("status", "")
        if case.find("skipped") is not None:
            out[case.get("name")] = "skipped"
        elif case.find("failure") is not None or status == "fail":
            out[case.get("name")] = "failed"
        elif status == "run":
            out[case.get("name")] = "passed"
        else:
            out[case.get("name")] = "not run"
    return out


def summarize(isas, results):
    """Per ISA path (in first-seen order): counts of passed / failed / skipped / not run tests."""
    paths = {}
    for name, names in isas.items():
        for isa in names:
            c = paths.setdefault(isa, {"passed": 0, "failed": 0, "skipped": 0, "not run": 0})
            c[results.get(name, "not run")] += 1
    return paths


def report(paths, required):
    """(summary line, banner lines, missing required paths)."""
    tested = [i for i, c in paths.items() if c["passed"] + c["failed"] > 0 and c["skipped"] == 0]
    partly = [i for i, c in paths.items() if c["passed"] + c["failed"] > 0 and c["skipped"] > 0]
    untested = [i for i, c in paths.items() if c["passed"] + c["failed"] == 0]

    def counts(i):
        c = paths[i]
        parts = ["%d passed" % c["passed"]]
        for k in ("failed", "skipped", "not run"):
            if c[k]:
                parts.append("%d %s" % (c[k], k))
        return "%s (%s)" % (i, ", ".join(parts))

    line = "CPU ISA paths (native tests): tested %s; NOT TESTED: %s" % (
        ", ".join(counts(i) for i in tested + partly) or "none",
        ", ".join(counts(i) for i in untested) or "none")
    banner = []
    if untested or partly:
        bar = "!" * 100
        banner = [bar,
                  "!!! CPU ISA PATHS NOT TESTED ON THIS MACHINE: %s" % ", ".join(untested + partly),
                  "!!! Their kernels were compiled but %s run here (this CPU lacks the ISA: ctest skip, exit 77)."
                  % ("never" if not partly else "not fully"),
                  "!!! Run ./latentmoe test on a CPU that has them, or set LATENTMOE_REQUIRE_ISAS to make this fatal.",
                  bar]
    want = list(paths) if required == ["all"] else required
    missing = [i for i in want if i not in tested]
    return line, banner, missing


def self_test():
    labels = json.dumps({"tests": [
        {"name": "cpu_router_scalar", "properties": [{"name": "LABELS", "value": ["isa=scalar"]}]},
        {"name": "cpu_router_avx512", "properties": [{"name": "LABELS", "value": ["isa=avx512"]},
                                                     {"name": "SKIP_RETURN_CODE", "value": 77}]},
        {"name": "cpu_forward_avx512", "properties": [{"name": "LABELS", "value": ["isa=avx512"]}]},
        {"name": "cpu_forward_amx", "properties": [{"name": "LABELS", "value": ["other", "isa=amx"]}]},
        {"name": "cpu_errors", "properties": [{"name": "TIMEOUT", "value": 120}]}]})
    junit = """<testsuite>
      <testcase name="cpu_router_scalar" status="run"/>
      <testcase name="cpu_router_avx512" status="notrun"><skipped message="SKIP_RETURN_CODE=77"/></testcase>
      <testcase name="cpu_forward_avx512" status="notrun"><skipped message="SKIP_RETURN_CODE=77"/></testcase>
      <testcase name="cpu_forward_amx" status="fail"><failure message="boom"/></testcase>
      <testcase name="cpu_errors" status="run"/></testsuite>"""
    isas = labels_from_json(labels)
    assert isas == {"cpu_router_scalar": ["scalar"], "cpu_router_avx512": ["avx512"],
                    "cpu_forward_avx512": ["avx512"], "cpu_forward_amx": ["amx"]}, isas
    paths = summarize(isas, results_from_junit(junit))
    line, banner, missing = report(paths, [])
    assert line == ("CPU ISA paths (native tests): tested scalar (1 passed), amx (0 passed, 1 failed); "
                    "NOT TESTED: avx512 (0 passed, 2 skipped)"), line
    assert banner and "NOT TESTED ON THIS MACHINE: avx512" in banner[1], banner
    assert missing == []
    assert report(paths, ["scalar", "avx512"])[2] == ["avx512"]
    assert report(paths, ["all"])[2] == ["avx512"]
    assert report(paths, ["avx10"])[2] == ["avx10"], "a required path without tests is missing"
    everything = summarize({"t_a": ["scalar"], "t_b": ["avx2"]},
                           results_from_junit('<testsuite><testcase name="t_a" status="run"/>'
                                              '<testcase name="t_b" status="run"/></testsuite>'))
    line, banner, missing = report(everything, ["all"])
    assert line == "CPU ISA paths (native tests): tested scalar (1 passed), avx2 (1 passed); NOT TESTED: none", line
    assert banner == [] and missing == []
    partly = summarize({"t_a": ["avx512"], "t_b": ["avx512"]},
                       results_from_junit('<testsuite><testcase name="t_a" status="run"/><testcase name="t_b" '
                                          'status="notrun"><skipped/></testcase></testsuite>'))
    line, banner, missing = report(partly, ["avx512"])
    assert "tested avx512 (1 passed, 1 skipped)" in line and banner and missing == ["avx512"], (line, missing)
    print("isa_summary self-test: ok")
    return 0


def main(argv):
    if argv[:1] == ["--self-test"]:
        return self_test()
    args, out, required = [], None, os.environ.get("LATENTMOE_REQUIRE_ISAS", "")
    it = iter(argv)
    for a in it:
        if a == "--out":
            out = next(it, None)
        elif a == "--require":
            required = next(it, "")
        else:
            args.append(a)
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    build_dir, junit_file = args
    try:
        with open(junit_file, encoding="utf-8") as f:
            results = results_from_junit(f.read())
        isas = labels_from_ctest(build_dir)
    except (OSError, ET.ParseError, ValueError, subprocess.CalledProcessError) as e:
        print("isa_summary: cannot read the ctest results: %s" % e, file=sys.stderr)
        return 2
    paths = summarize(isas, results)
    if not paths:
        print("isa_summary: no ctest test carries an isa=<name> label", file=sys.stderr)
        return 2
    want = [r.strip() for r in required.split(",") if r.strip()]
    line, banner, missing = report(paths, want)
    for b in banner:
        print(b)
    print(line)
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(line + "\n")
    if missing:
        print("ISA paths required (LATENTMOE_REQUIRE_ISAS=%s) but not tested: %s" % (required, ", ".join(missing)))
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
