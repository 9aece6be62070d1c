#!/usr/bin/env bash
# Everything issue 6 must show on a real GPU, in one call on a lent H100/H200 machine:
#
#   bash benchmarks/gpu_session.sh [STEP ...]        (default: all steps below, in order)
#
# Steps (the default order puts what issue 6 must show first)
#   info       nvidia-smi, nvcc, compute-sanitizer and package versions
#   install    cupy matching the driver (cupy-cuda13x / cupy-cuda12x) if cupy is missing,
#              then `pip install -e .` without build isolation, which builds tinygen._C
#              (TINYGEN_CUDA_ARCHS, default 90); skipped when this checkout is already
#              installed with tinygen._C built
#   tests      pytest -m cuda (every GPU test: results equal to the CPU's for every op
#              family, gradcheck in float64 on the GPU, and the kernel tests marked cuda)
#   bench      python -m benchmarks.kernels (BENCH_SIZE=full|quick, default full)
#   memcheck   compute-sanitizer --tool memcheck over benchmarks/check_kernels.py (every
#              kernel on small odd shapes, float32 and float64, NVRTC and AOT, each
#              result compared with cuDNN / PyTorch)
#   racecheck  compute-sanitizer --tool racecheck over the same driver
#   kernels    the whole backend suite (tests/backend), emulator tests included
#
# Each step's exit status and time go to $OUT/summary.txt (printed last); a step that
# fails does not stop the next.  The steps share a budget of SESSION_BUDGET_S seconds
# (default 570: the device tool stops a command at 600 s); a step that would start
# with less than 20 s left is skipped, so call again with the remaining steps, e.g.
#   bash benchmarks/gpu_session.sh memcheck racecheck
# $OUT (default ./gpu-session-out) receives: summary.txt, session.log (each step's last
# lines), logs.tar.gz (every step's full log) and the benchmark's <device>.md / .json.
# The device tool returns at most 8 files from $OUT, which is why the logs are packed.
#
# Environment: PYTHON (default python3), WHEELS (a folder of wheels to install cupy
# from when the machine has no network), SESSION_BUDGET_S, BENCH_SIZE, TINYGEN_CUDA_ARCHS.
set -u

cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-$PWD/gpu-session-out}
mkdir -p "$OUT"
LOGS=$(mktemp -d)
START=$(date +%s)
BUDGET=${SESSION_BUDGET_S:-570}
export PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
export TINYGEN_CUDA_ARCHS=${TINYGEN_CUDA_ARCHS:-90}
export BENCH_SIZE=${BENCH_SIZE:-full}
export OUT LOGS

note() { echo "$*" | tee -a "$OUT/summary.txt"; }

# --- the steps (each a function, run with its own time limit) --------------------------------
step_info() {
    nvidia-smi
    nvcc --version || echo "nvcc not found"
    compute-sanitizer --version || echo "compute-sanitizer not found"
    "$PYTHON" --version
    "$PYTHON" -m pip list 2>/dev/null \
        | grep -i -E '^(cupy|torch|numpy|numba|pybind11|pytest|hypothesis|setuptools) '
}

step_install() {
    if "$PYTHON" -c "import tinygen._C, tinygen, pathlib, sys; \
sys.exit(pathlib.Path(tinygen.__file__).resolve().parents[1] != pathlib.Path.cwd().resolve())" \
            2>/dev/null; then
        echo "this checkout is installed and tinygen._C is built: nothing to do"
        return 0
    fi
    if ! "$PYTHON" -c "import cupy; cupy.cuda.runtime.getDeviceCount()"; then
        local major
        major=$(nvidia-smi | sed -n 's/.*CUDA Version: *\([0-9]*\).*/\1/p' | head -n 1)
        local package=cupy-cuda12x
        [ "${major:-12}" -ge 13 ] && package=cupy-cuda13x
        echo "installing $package for a driver supporting CUDA ${major:-?}"
        "$PYTHON" -m pip install ${WHEELS:+--no-index --find-links "$WHEELS"} "$package" \
            || echo "could not install $package (no network? set WHEELS)"
    fi
    # No build isolation: the machine may have no network; setuptools, wheel and
    # pybind11 come from the environment.
    "$PYTHON" -m pip install --no-deps --no-build-isolation -v -e . || return 1
    "$PYTHON" -c "import tinygen._C as C; print('tinygen._C built for sm_', C.compiled_archs())"
    "$PYTHON" -m tinygen.cli info
}

step_tests() {
    "$PYTHON" -m pytest -q -p no:cacheprovider -rs -m cuda -n 4 tests
}

step_kernels() {
    "$PYTHON" -m pytest -q -p no:cacheprovider -rs -n 8 tests/backend
}

# Every kernel (both dtypes, both load paths) under compute-sanitizer: the driver
# benchmarks/check_kernels.py switches cupy's memory pool off, so that memcheck sees an
# access past an array's end (inside a pool chunk it would look valid).
sanitize() {
    compute-sanitizer --tool "$1" --error-exitcode 99 --print-limit 50 \
        "$PYTHON" -m benchmarks.check_kernels
}
step_memcheck() { sanitize memcheck; }
step_racecheck() { sanitize racecheck; }

step_bench() {
    "$PYTHON" -m benchmarks.kernels --size "$BENCH_SIZE" --out "$OUT"
}

export -f step_info step_install step_tests step_kernels sanitize step_memcheck \
    step_racecheck step_bench

# --- running them ------------------------------------------------------------------------------
declare -A LIMIT=([info]=30 [install]=240 [tests]=180 [kernels]=180 [memcheck]=150
                  [racecheck]=150 [bench]=300)

run_step() {
    local name=$1 limit=${LIMIT[$1]}
    local left=$((BUDGET - ($(date +%s) - START)))
    if [ "$left" -lt 20 ]; then
        note "$name: SKIPPED (session budget of ${BUDGET}s spent; run it in another call)"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    local began=$(date +%s)
    echo "=== $name (limit ${limit}s)" | tee -a "$OUT/session.log"
    timeout --kill-after=10 "$limit" bash -c "step_$name" >"$LOGS/$name.log" 2>&1
    local rc=$?
    tail -n 40 "$LOGS/$name.log" | tee -a "$OUT/session.log" >/dev/null
    local how="exit $rc"
    [ "$rc" -eq 124 ] && how="TIMED OUT after the ${limit}s limit"
    [ "$rc" -eq 0 ] && how="ok"
    note "$name: $how ($(($(date +%s) - began))s; log $name.log in logs.tar.gz)"
}

STEPS=("$@")
[ ${#STEPS[@]} -eq 0 ] && STEPS=(info install tests bench memcheck racecheck kernels)
: >"$OUT/summary.txt"
note "gpu_session: steps ${STEPS[*]}, budget ${BUDGET}s, $(date -u +%FT%TZ)"
for step in "${STEPS[@]}"; do
    if [ -z "${LIMIT[$step]:-}" ]; then
        note "$step: unknown step (known: ${!LIMIT[*]})"
        continue
    fi
    run_step "$step"
done

# Sanitizer logs can be long: keep each log's first and last 2 MB at most.
for log in "$LOGS"/*.log; do
    [ -f "$log" ] || continue
    if [ "$(stat -c %s "$log")" -gt 4194304 ]; then
        { head -c 2097152 "$log"; echo; echo "[... cut ...]"; tail -c 2097152 "$log"; } \
            >"$log.cut" && mv "$log.cut" "$log"
    fi
done
tar -czf "$OUT/logs.tar.gz" -C "$LOGS" . && rm -rf "$LOGS"
echo
echo "=== summary ($OUT)"
cat "$OUT/summary.txt"
