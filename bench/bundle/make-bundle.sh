#!/usr/bin/env bash
# make-bundle.sh [--out] OUTDIR - the self-contained GPU bundle: everything needed to run the GPU
# tests and the GPU benchmark on a Linux x86-64 machine that has only an NVIDIA driver (no Java,
# no network, no registry). Also `./latentmoe bundle --out DIR`.
#
#   OUTDIR/run.sh            run it there: `bash OUTDIR/run.sh RESULTS_DIR` (see run.sh)
#   OUTDIR/tune.sh           sweep of the CUDA tuning knobs: `bash OUTDIR/tune.sh DIR` -> DIR/tune.env
#   OUTDIR/jre/              jlink'd JDK runtime (java.base, java.logging, java.xml, jdk.unsupported,
#                            java.management and jdk.management for the per-thread allocation counter)
#   OUTDIR/jars/             latentmoe-{bindings,memory,kernels,bench}.jar, the kernels and memory
#                            test classes as jars, junit-platform-console-standalone-1.14.1.jar
#   OUTDIR/lib/              liblatentmoe.so, liblatentmoe_cuda.so (sm_90a, static cudart)
#   OUTDIR/bin/              lmoe_cuda_test, lmoe_cuda_bench (RPATH $ORIGIN/../lib)
#   OUTDIR/peers/            peers_gpu.py, only when bench/peers/peers_gpu.py exists
#   OUTDIR/BUNDLE.txt        what was bundled: git revision, JDK, sizes, sha256 of every file
#
# Inputs (built beforehand; `./latentmoe bundle` builds them): the Maven jars and test classes
# (`./mvnw install -DskipTests` compiles the tests too) and a CUDA build of native/ with
# liblatentmoe_cuda.so. Environment:
#   LMOE_BUNDLE_NATIVE_DIR  the CMake build folder with lib/ and bin/ (default native/build)
#   LMOE_BUNDLE_MAX_MIB     size limit, default 60: a larger bundle is an error
#   LMOE_BUNDLE_SMOKE=0     skip the final smoke test (bundled java starts, classpath complete)
# The jlink runtime is cached in .build/bundle-jre-* (keyed by the JDK and the module list), so a
# rebuild takes a few seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/bundle"
JUNIT_VERSION=1.14.1
JUNIT_JAR="junit-platform-console-standalone-$JUNIT_VERSION.jar"
MODULES="java.base,java.logging,java.xml,jdk.unsupported,java.management,jdk.management"
MAX_MIB="${LMOE_BUNDLE_MAX_MIB:-60}"
NATIVE="${LMOE_BUNDLE_NATIVE_DIR:-$ROOT/native/build}"

die() { echo "make-bundle: error: $*" >&2; exit 1; }
say() { echo "[make-bundle] $*" >&2; }

out=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) [[ $# -ge 2 ]] || die "--out needs a folder"; out="$2"; shift 2 ;;
    --out=*) out="${1#--out=}"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (usage: make-bundle.sh [--out] OUTDIR)" ;;
    *) [[ -z "$out" ]] || die "one output folder only"; out="$1"; shift ;;
  esac
done
[[ -n "$out" ]] || die "usage: make-bundle.sh [--out] OUTDIR"
t_start=$SECONDS

# ---- JDK tools ------------------------------------------------------------------------------------
jdk="${JAVA_HOME:-}"
if [[ -z "$jdk" || ! -x "$jdk/bin/jlink" ]]; then
  command -v jlink >/dev/null 2>&1 || die "no jlink: set JAVA_HOME to a JDK 25 (./latentmoe does)"
  jdk="$(dirname "$(dirname "$(readlink -f "$(command -v jlink)")")")"
fi
for t in java jlink jar; do [[ -x "$jdk/bin/$t" ]] || die "$jdk/bin/$t missing: JAVA_HOME must be a full JDK 25"; done
jver="$("$jdk/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.runtime\.version = //p' | head -n1)"
jmajor="${jver%%[.+-]*}"
[[ "$jmajor" =~ ^[0-9]+$ ]] && (( jmajor >= 25 )) || die "JDK $jdk is '$jver', need >= 25"

# ---- inputs -----------------------------------------------------------------------------------------
for f in lib/liblatentmoe.so lib/liblatentmoe_cuda.so bin/lmoe_cuda_test bin/lmoe_cuda_bench; do
  [[ -f "$NATIVE/$f" ]] || die "$NATIVE/$f missing: the bundle needs a CUDA build of native/ (./latentmoe bundle builds one; or bash native/cmake/cuda-env.sh DIR and LMOE_BUNDLE_NATIVE_DIR=DIR)"
done
jar_of() { # module -> its main jar
  local j
  j="$(ls "$ROOT/$1/target/latentmoe-$1-"*.jar 2>/dev/null | grep -v -e '-sources\.jar$' -e '-tests\.jar$' -e '-javadoc\.jar$' | head -n1 || true)"
  [[ -n "$j" ]] || die "$1/target/latentmoe-$1-*.jar missing: build with ./mvnw install -DskipTests"
  echo "$j"
}
for m in kernels memory; do
  [[ -d "$ROOT/$m/target/test-classes/dev" ]] || die "$m/target/test-classes missing: ./mvnw install -DskipTests compiles the tests (not -Dmaven.test.skip)"
done
for c in kernels/CudaBackendTest kernels/LayerForwardTest kernels/KernelStepsTest kernels/CudaSuperLayerTest \
         kernels/CudaGraphedLayerTest memory/DeviceArenaTest memory/cuda/CudaGraphTest; do
  m="${c%%/*}"
  [[ -f "$ROOT/$m/target/test-classes/dev/latentmoe/$c.class" ]] \
    || die "$m/target/test-classes/dev/latentmoe/$c.class missing (stale build?)"
done

junit=""
for cand in "$HOME/.m2/repository/org/junit/platform/junit-platform-console-standalone/$JUNIT_VERSION/$JUNIT_JAR" \
            "$ROOT/.build/junit/$JUNIT_JAR"; do
  [[ -f "$cand" ]] && { junit="$cand"; break; }
done
if [[ -z "$junit" ]]; then
  say "resolving $JUNIT_JAR through the Maven wrapper"
  mkdir -p "$ROOT/.build/junit"
  (cd "$ROOT" && ./mvnw -q -B dependency:copy \
      "-Dartifact=org.junit.platform:junit-platform-console-standalone:$JUNIT_VERSION" \
      "-DoutputDirectory=$ROOT/.build/junit") >&2 || die "cannot resolve $JUNIT_JAR"
  junit="$ROOT/.build/junit/$JUNIT_JAR"
  [[ -f "$junit" ]] || die "$junit missing after dependency:copy"
fi

# ---- jlink runtime (cached) --------------------------------------------------------------------------
key="$(printf '%s\n' "$jdk" "$jver" "$MODULES" | sha256sum | cut -c1-12)"
jre_cache="$ROOT/.build/bundle-jre-$key"
if [[ ! -x "$jre_cache/bin/java" ]]; then
  say "jlink: $MODULES (JDK $jver) -> $jre_cache"
  rm -rf "$jre_cache" "$jre_cache.tmp"
  mkdir -p "$ROOT/.build"
  "$jdk/bin/jlink" --add-modules "$MODULES" --strip-debug --no-man-pages --no-header-files \
    --compress=zip-9 --output "$jre_cache.tmp" >&2 || die "jlink failed"
  # jlink from a JDK without jmods/ copies native libraries as they are: drop their symbol tables
  # (libjvm.so 29 -> 24 MB). Dynamic symbols stay.
  if command -v strip >/dev/null 2>&1; then
    chmod -R u+w "$jre_cache.tmp"
    find "$jre_cache.tmp" -name '*.so' -exec strip --strip-unneeded {} + || die "strip failed"
  else
    say "no strip: the runtime keeps its native symbol tables (~5 MB more)"
  fi
  "$jre_cache.tmp/bin/java" -version >/dev/null 2>&1 || die "the jlink'd runtime does not start"
  mv "$jre_cache.tmp" "$jre_cache"
fi

# ---- assemble ------------------------------------------------------------------------------------------
mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
if [[ -e "$out" && ! -f "$out/BUNDLE.txt" && -n "$(ls -A "$out" 2>/dev/null)" ]]; then
  die "$out exists, is not empty and is not a bundle: refusing to replace it"
fi
stage="$out.tmp.$$"
rm -rf "$stage"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{jars,lib,bin}
cp -a "$jre_cache" "$stage/jre"
for m in bindings memory kernels bench; do
  cp "$(jar_of "$m")" "$stage/jars/latentmoe-$m.jar"
done
for m in kernels memory; do
  "$jdk/bin/jar" --create --file "$stage/jars/latentmoe-$m-tests.jar" -C "$ROOT/$m/target/test-classes" . \
    || die "jar of $m/target/test-classes failed"
done
cp "$junit" "$stage/jars/$JUNIT_JAR"
cp "$NATIVE/lib/liblatentmoe.so" "$NATIVE/lib/liblatentmoe_cuda.so" "$stage/lib/"
cp "$NATIVE/bin/lmoe_cuda_test" "$NATIVE/bin/lmoe_cuda_bench" "$stage/bin/"
chmod 755 "$stage/bin/"* "$stage/lib/"*
cp "$HERE/run.sh" "$stage/run.sh"
cp "$HERE/tune.sh" "$stage/tune.sh"
chmod 755 "$stage/run.sh" "$stage/tune.sh"
if [[ -f "$ROOT/bench/peers/peers_gpu.py" ]]; then
  mkdir -p "$stage/peers"
  cp "$ROOT/bench/peers/peers_gpu.py" "$stage/peers/"
fi
# Arrow is not on the GPU path: no class of the bundled jars that the tests or the bench load needs it.
{
  echo "LatentMoE GPU bundle"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm)"
  echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (uncommitted changes)')"
  echo "jdk: $jver ($jdk), modules $MODULES"
  echo "native: $NATIVE"
  echo "run: bash run.sh RESULTS_DIR   (needs an NVIDIA driver; Hopper sm_90 GPU for the CUDA kernels)"
  echo
  echo "sha256:"
  (cd "$stage" && find . -type f ! -path './jre/*' ! -name BUNDLE.txt | LC_ALL=C sort | xargs sha256sum)
} > "$stage/BUNDLE.txt"

# ---- size --------------------------------------------------------------------------------------------------
bytes="$(du -sb "$stage" | cut -f1)"
mib="$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')"
jre_mib="$(du -sb "$stage/jre" | awk '{ printf "%.1f", $1 / 1048576 }')"
echo "size: $mib MiB (limit $MAX_MIB MiB; runtime $jre_mib MiB)" >> "$stage/BUNDLE.txt"
if (( bytes > MAX_MIB * 1048576 )); then
  du -sh "$stage"/* >&2
  die "bundle is $mib MiB, over the $MAX_MIB MiB limit"
fi

# ---- smoke: the bundled java starts and the classpath is complete (no GPU needed) ----------------------------
if [[ "${LMOE_BUNDLE_SMOKE:-1}" != 0 ]]; then
  cp=""
  for j in "$stage"/jars/latentmoe-*.jar; do cp="${cp:+$cp:}$j"; done
  smoke="$(mktemp)"
  if ! "$stage/jre/bin/java" --enable-native-access=ALL-UNNAMED "-Dlatentmoe.native.dir=$stage/lib" \
      -jar "$stage/jars/$JUNIT_JAR" execute --disable-banner --details=summary --fail-if-no-tests \
      --class-path "$cp" --select-class dev.latentmoe.kernels.CudaBackendTest >"$smoke" 2>&1; then
    cat "$smoke" >&2; rm -f "$smoke"
    die "smoke test failed: the bundled runtime cannot run CudaBackendTest (log above)"
  fi
  say "smoke: bundled java ran CudaBackendTest ($(grep -Eo '[0-9]+ tests successful' "$smoke" | head -n1 || echo ok))"
  rm -f "$smoke"
fi

rm -rf "$out"
mv "$stage" "$out"
trap - EXIT
say "bundle: $out ($mib MiB, limit $MAX_MIB MiB) in $((SECONDS - t_start)) s"
say "on the GPU machine: bash $out/run.sh RESULTS_DIR"
echo "$out"
