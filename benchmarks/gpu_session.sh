#!/usr/bin/env bash
# Everything the GPU issues must show on a real GPU, in as few calls as the device budget
# allows on a lent H100/H200 machine:
#
#   bash benchmarks/gpu_session.sh [STEP ...]        (default: all steps below, in order)
#
# Steps (the default order puts what must be shown first)
#   info       nvidia-smi, nvcc, compute-sanitizer and package versions
#   install    cupy matching the driver (cupy-cuda13x / cupy-cuda12x) if cupy is missing,
#              then `setup.py build_ext --inplace`, which builds tinygen._C
#              (TINYGEN_CUDA_ARCHS, default 90); tinygen is imported from this checkout
#   check      python -m benchmarks.check_kernels: every kernel at sizes 'tiny' and 'odd',
#              float64 (1e-10) and float32 (1e-5) against a float64 CPU reference, NVRTC
#              and AOT bit-equal, each run twice (same bits), outputs poisoned with NaN
#   tests      pytest -m cuda (every GPU test: results equal to the CPU's for every op
#              family, gradcheck in float64 on the GPU, and the kernel tests marked cuda)
#   bench      python -m benchmarks.kernels (BENCH_SIZE=full|quick, default quick)
#   memcheck   compute-sanitizer --tool memcheck over benchmarks/check_kernels.py
#   racecheck  compute-sanitizer --tool racecheck over the same driver
#   synccheck  compute-sanitizer --tool synccheck over the same driver
#   initcheck  compute-sanitizer --tool initcheck over it, without the NaN poisoning
#   models     python -m benchmarks.gpu_models: gated PixelCNN and WaveNet training steps
#              and WaveNet generation, tinygen on the GPU against PyTorch on the GPU
#   kernels    the whole backend suite (tests/backend), emulator tests included
#   profile    ncu (Nsight Compute) on the quick 3x3 conv row's three GEMM kernels: stall
#              reasons, occupancy, issue and memory throughput; then cProfile of the gated
#              PixelCNN training step's host time (not in the default list)
#
# Session 11 ran every default step but `kernels` on an H200 (results/nvidia-h200.md); the
# next lent session should start with `install tests profile`, then `BENCH_SIZE=full bench`.
#
# Each step's exit status and time go to $OUT/summary.txt (printed last); a step that
# fails does not stop the next.  The steps share a budget of SESSION_BUDGET_S seconds
# (default 450, so that a first call ends inside 8 minutes); a step that would start
# with less than 20 s left is skipped, so call again with the remaining steps, e.g.
#   bash benchmarks/gpu_session.sh install memcheck racecheck
# $OUT (default ./gpu-session-out) receives: summary.txt, session.log (each step's last
# lines), logs.tar.gz (every step's full log, re-packed after every step so that a call
# cut short still returns what ran), check_kernels.json, the benchmark's <device>.md /
# .json and gpu_models.json.  The device tool returns at most 8 files from $OUT, which
# is why the logs are packed.
#
# Environment: PYTHON (default python3), WHEELS (a folder of wheels to install cupy
# from when the machine has no network), SESSION_BUDGET_S, BENCH_SIZE, TINYGEN_CUDA_ARCHS.
set -u

cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-$PWD/gpu-session-out}
mkdir -p "$OUT"
LOGS=$(mktemp -d)
START=$(date +%s)
BUDGET=${SESSION_BUDGET_S:-450}
export PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TINYGEN_CUDA_ARCHS=${TINYGEN_CUDA_ARCHS:-90}
export BENCH_SIZE=${BENCH_SIZE:-quick}
export OUT LOGS

note() { echo "$*" | tee -a "$OUT/summary.txt"; }

# --- the steps (each a function, run with its own time limit) --------------------------------
step_info() {
    nvidia-smi
    nvcc --version || echo "nvcc not found"
    compute-sanitizer --version || echo "compute-sanitizer not found"
    ncu --version || echo "ncu not found"
    "$PYTHON" --version
    "$PYTHON" -m pip list 2>/dev/null \
        | grep -i -E '^(cupy|torch|numpy|numba|pybind11|pytest|hypothesis|setuptools) '
}

step_install() {
    if ! "$PYTHON" -c "import cupy; cupy.cuda.runtime.getDeviceCount()"; then
        local major
        major=$(nvidia-smi | sed -n 's/.*CUDA Version: *\([0-9]*\).*/\1/p' | head -n 1)
        local package=cupy-cuda12x
        [ "${major:-12}" -ge 13 ] && package=cupy-cuda13x
        echo "installing $package for a driver supporting CUDA ${major:-?}"
        "$PYTHON" -m pip install ${WHEELS:+--no-index --find-links "$WHEELS"} "$package" \
            || echo "could not install $package (no network? set WHEELS)"
    fi
    # tinygen._C in place (incremental: a warm machine's second call relinks nothing), and
    # tinygen imported from this checkout through PYTHONPATH (set above): no pip, no
    # network, no build isolation needed.
    "$PYTHON" setup.py build_ext --inplace || return 1
    "$PYTHON" -c "import tinygen._C as C; print('tinygen._C built for sm_', C.compiled_archs())"
    "$PYTHON" -m tinygen.cli info
}

step_tests() {
    "$PYTHON" -m pytest -q -p no:cacheprovider -rs -m cuda -n 4 tests
}

step_kernels() {
    "$PYTHON" -m pytest -q -p no:cacheprovider -rs -n 8 tests/backend
}

step_check() {
    "$PYTHON" -m benchmarks.check_kernels --size tiny odd --json "$OUT/check_kernels.json"
}

# Every kernel (both dtypes, both load paths, sizes tiny and odd) under compute-sanitizer:
# the driver benchmarks/check_kernels.py gives each array a cudaMalloc of its own, so
# that memcheck sees an access past an array's end (inside a pool chunk it would look
# valid), and computes its reference on the CPU, so that the GPU runs our kernels only.
sanitize() {
    local tool=$1
    shift
    compute-sanitizer --tool "$tool" --error-exitcode 99 --print-limit 50 \
        "$PYTHON" -m benchmarks.check_kernels --size tiny odd "$@"
}
step_memcheck() { sanitize memcheck; }
step_racecheck() { sanitize racecheck; }
step_synccheck() { sanitize synccheck; }
step_initcheck() { sanitize initcheck --no-poison; }

step_models() {
    "$PYTHON" -m benchmarks.gpu_models --json "$OUT/gpu_models.json"
}

# Why the GEMM tiles reach 16-31% of FP32 peak where the static model promises 81-84%
# (results/nvidia-h200.md, finding 3): one launch of each m64 kernel, profiled, on the
# quick 3x3 conv row (one process per phase, so that each is the row's first launch).
step_profile() {
    local phase kernel failed=0
    for phase in fwd:forward dgrad:input_grad wgrad:weight_grad; do
        kernel=conv_${phase#*:}_m64_f32
        echo "=== ncu: $kernel (row 'conv2d 3x3 N32 64->64 28x28 pad1 ${phase%%:*}')"
        ncu --clock-control none --kernel-name "$kernel" --launch-count 1 \
            --section SpeedOfLight --section Occupancy --section LaunchStats \
            --section WarpStateStats --section SchedulerStats --section InstructionStats \
            --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
            "$PYTHON" -m benchmarks.kernels --size quick --impl nvrtc --samples 1 --inner 1 \
            --warmup 0 --only "conv2d 3x3 N32 64->64 28x28 pad1 ${phase%%:*}" \
            --out "$LOGS/profile-bench" || { echo "ncu exit $?"; failed=1; }
    done
    # and where a training step's host time goes (results: 56.5 ms at batch 32, 58.9 ms
    # at 128: not the kernels)
    "$PYTHON" -m benchmarks.gpu_models --profile 5 || failed=1
    return $failed
}

step_bench() {
    "$PYTHON" -m benchmarks.kernels --size "$BENCH_SIZE" --out "$OUT"
}

export -f step_info step_install step_check step_tests step_kernels sanitize step_memcheck \
    step_racecheck step_synccheck step_initcheck step_models step_bench step_profile

# --- running them ------------------------------------------------------------------------------
declare -A LIMIT=([info]=30 [install]=180 [check]=120 [tests]=150 [kernels]=180
                  [memcheck]=150 [racecheck]=240 [synccheck]=120 [initcheck]=120
                  [models]=180 [bench]=240 [profile]=180)

# The step logs, packed after every step (the device tool returns at most 8 files, and a
# call cut short at its limit must still return what ran).
pack_logs() {
    local log
    for log in "$LOGS"/*.log; do
        [ -f "$log" ] || continue
        # Sanitizer logs can be long: keep each log's first and last 2 MB at most.
        if [ "$(stat -c %s "$log")" -gt 4194304 ]; then
            { head -c 2097152 "$log"; echo; echo "[... cut ...]"; tail -c 2097152 "$log"; } \
                >"$log.cut" && mv "$log.cut" "$log"
        fi
    done
    tar -czf "$OUT/logs.tar.gz" -C "$LOGS" .
}

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
    # compute-sanitizer's own count, and the last line of a pytest or check run
    local counted counts="ERROR SUMMARY|RACECHECK SUMMARY|^[0-9]+ checks"
    counts="$counts|(passed|failed|skipped|error).* in [0-9.]+s"
    counted=$(grep -h -E "$counts" "$LOGS/$name.log" | tail -n 3 | tr '\n' ';')
    note "$name: $how ($(($(date +%s) - began))s; log $name.log in logs.tar.gz) ${counted}"
    pack_logs
}

STEPS=("$@")
[ ${#STEPS[@]} -eq 0 ] && STEPS=(info install check tests bench memcheck racecheck synccheck
                                 initcheck models kernels)
: >"$OUT/summary.txt"
note "gpu_session: steps ${STEPS[*]}, budget ${BUDGET}s, $(date -u +%FT%TZ)"
for step in "${STEPS[@]}"; do
    if [ -z "${LIMIT[$step]:-}" ]; then
        note "$step: unknown step (known: ${!LIMIT[*]})"
        continue
    fi
    run_step "$step"
done

pack_logs && rm -rf "$LOGS"
echo
echo "=== summary ($OUT)"
cat "$OUT/summary.txt"
