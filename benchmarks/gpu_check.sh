#!/usr/bin/env bash
# The GPU check: on a fresh offline GPU machine, install classaware and DVC from carried wheels,
# run the whole pipeline at the `gpu-check` profile on CUDA (every stage, the paper's code paths),
# the CUDA tests and the throughput benchmarks, and leave one JSON file of what happened.
#
#   bash benchmarks/gpu_check.sh OUT_DIR          # on one GPU, about 8 minutes (benchmarks/README.md)
#   bash benchmarks/gpu_check.sh --cpu OUT_DIR    # the same script at toy size on a CPU: gpu-check with
#                                                 # benchmarks/gpu_check_cpu.yaml merged in, CPU-sized
#                                                 # benchmarks, no install
#
# Writes OUT_DIR/gpu_check.json (its keys: benchmarks/gpu_check.py), OUT_DIR/gpu_check.log (every
# command's output, then `classaware estimate` of the profile just run and of `paper` from the
# measured figures) and, when the pipeline got that far, OUT_DIR/report.md and OUT_DIR/dvc.lock.
# Everything else (the pipeline's copy of the repository, its models, the installed wheels) lives
# in a temporary folder that is removed at the end. Every step is time-boxed to fit the whole in
# GPU_CHECK_BUDGET_S seconds (505 on a GPU, 280 with --cpu), its exit status and time are
# recorded, and the JSON is written whatever failed. Exit status: 0 when the JSON lists no errors.
#
# Inputs (defaults for the GPU machine, where the checkout carries .carry/):
#   GPU_CHECK_CARRY  folder holding wheels-py312/ (the GPU install)         default: REPO/.carry
#   GPU_CHECK_DATA   the CIFAR-10 archive                                   default: CARRY/cifar10-jpeg.tar.gz
#   GPU_CHECK_SIZE   benchmark sizes of benchmarks/gpu_check.py's SIZES      default: gpu, or cpu with --cpu
#   PYTHON           the interpreter                                        default: python3
set -u -o pipefail

MODE=gpu
if [ "${1:-}" = "--cpu" ]; then MODE=cpu; shift; fi
if [ $# -ne 1 ]; then echo "usage: $0 [--cpu] OUT_DIR" >&2; exit 2; fi
mkdir -p "$1" && OUT=$(cd "$1" && pwd) || exit 2
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CARRY=${GPU_CHECK_CARRY:-$REPO/.carry}
ARCHIVE=${GPU_CHECK_DATA:-$CARRY/cifar10-jpeg.tar.gz}
PY=${PYTHON:-python3}
export REPO PY
PROFILE=gpu-check
START=$(date +%s)
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
if [ "$MODE" = gpu ]; then
    BUDGET=${GPU_CHECK_BUDGET_S:-505}; PIPELINE_MAX=300; BENCH_RESERVE=160; OVERRIDES=""
    SIZE=${GPU_CHECK_SIZE:-gpu}; DEVICE=cuda
else
    BUDGET=${GPU_CHECK_BUDGET_S:-280}; PIPELINE_MAX=$BUDGET; BENCH_RESERVE=50; OVERRIDES=$REPO/benchmarks/gpu_check_cpu.yaml
    SIZE=${GPU_CHECK_SIZE:-cpu}; DEVICE=cpu
    # one thread unless told otherwise: on a shared CPU, OpenMP's spinning threads slow to a crawl
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
PARTS=$WORK/parts
PIPE=$WORK/repo
mkdir -p "$PARTS" "$PIPE"
trap 'rm -rf "$WORK"' EXIT

left() { echo $(( START + BUDGET - $(date +%s) )); }

# step NAME LIMIT_S COMMAND...: run COMMAND time-boxed, log it, record its exit status and time
step() {
    local name=$1 limit=$2 t0 ms rc
    shift 2
    [ "$limit" -ge 1 ] || limit=1
    echo "=== $(date -u +%T) $name (at most $limit s): $*"
    t0=$(date +%s%N)
    timeout --kill-after=10 "$limit" "$@"
    rc=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    printf '{"step": "%s", "rc": %d, "seconds": %d.%03d}\n' "$name" "$rc" $((ms / 1000)) $((ms % 1000)) >> "$PARTS/steps.jsonl"
    echo "=== $(date -u +%T) $name: exit $rc after $((ms / 1000)) s"
    return "$rc"
}

install_wheels() {  # the GPU machine's PyTorch stays; DVC and its dependencies go to $SITE
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$CARRY"/wheels-py312/*.whl \
        && PYTHONPATH=$SITE "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e "$REPO"
}

copy_repository() {  # the files a fresh clone has, into $PIPE, where the pipeline runs
    if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        (cd "$REPO" && git ls-files -co --exclude-standard -z | tar --null --ignore-failed-read -T - -cf -) | tar -xf - -C "$PIPE" || return 1
    else  # a copy of a working tree without its git history
        tar -C "$REPO" --exclude=./.carry --exclude=./.git --exclude=./.venv --exclude=./.tox --exclude=./.dvc/cache \
            --exclude=./.dvc/tmp --exclude=__pycache__ -cf - . | tar -xf - -C "$PIPE" || return 1
    fi
    cd "$PIPE" || return 1
    if command -v git >/dev/null; then
        git init -q && git add -A && git -c user.name=gpu-check -c user.email=gpu-check@localhost commit -qm "gpu check" || return 1
    else
        dvc config --local core.no_scm true || return 1
    fi
    "$PY" "$REPO/benchmarks/gpu_check.py" params --profile "$PROFILE" --profiles profiles --data "$ARCHIVE" \
        ${OVERRIDES:+--overrides "$OVERRIDES"} --out params.yaml
}

main() {
    echo "classaware GPU check, mode $MODE, profile $PROFILE, benchmark size $SIZE, budget $BUDGET s, started $STARTED"
    echo "repository $REPO, output $OUT, work folder $WORK"

    if [ "$MODE" = gpu ]; then
        SITE=$WORK/site
        export SITE CARRY
        export -f install_wheels
        step install 150 bash -c install_wheels
        export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
        export PATH=$SITE/bin:$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$("$PY" -m site --user-base)/bin:$PATH
        if ! command -v classaware >/dev/null || ! "$PY" -c 'import classaware' 2>/dev/null; then
            echo "classaware is not installed (see the install step); running it from $REPO/src instead"
            export PYTHONPATH=$REPO/src:$PYTHONPATH
            mkdir -p "$SITE/bin"
            printf '#!/bin/sh\nexec %s -m classaware.cli "$@"\n' "$PY" > "$SITE/bin/classaware" && chmod +x "$SITE/bin/classaware"
        fi
    else  # --cpu: this environment's classaware, DVC and PyTorch (the wheels are for the GPU machine's Python 3.12)
        step install 60 "$PY" -c 'import classaware, dvc, torch; print("--cpu: no install; using", classaware.__file__, "torch", torch.__version__)'
    fi

    (cd "$REPO" && step env 60 "$PY" benchmarks/gpu_check.py env --device "$DEVICE" --out "$PARTS/env.json")
    if command -v nvidia-smi >/dev/null; then nvidia-smi 2>&1 | tee "$PARTS/nvidia_smi.txt"; fi

    export -f copy_repository
    export PIPE PROFILE ARCHIVE OVERRIDES
    local limit=$(( $(left) - BENCH_RESERVE ))
    [ "$limit" -le "$PIPELINE_MAX" ] || limit=$PIPELINE_MAX
    if step copy 60 bash -c copy_repository; then
        (cd "$PIPE" && step pipeline "$limit" dvc repro)
    fi

    (cd "$REPO" && step cuda_tests 60 "$PY" -m pytest -q -m cuda -p no:cacheprovider --junitxml="$PARTS/cuda_tests.xml" tests/test_cuda.py)

    (cd "$REPO" && step bench $(( $(left) - 15 )) "$PY" benchmarks/gpu_check.py bench --size "$SIZE" --device "$DEVICE" \
        --data "$PIPE/data/cifar10.pt" --models "$PIPE/models" --scratch "$PIPE" --deadline $(( START + BUDGET - 40 )) \
        --out "$PARTS/bench.json")

    (cd "$REPO" && "$PY" benchmarks/gpu_check.py collect --mode "$MODE" --profile "$PROFILE" --parts "$PARTS" --work "$PIPE" \
        --started "$STARTED" --started_s "$START" --out "$OUT/gpu_check.json")
    local rc=$?
    for f in report/report.md dvc.lock; do
        if [ -f "$PIPE/$f" ]; then cp "$PIPE/$f" "$OUT/"; fi
    done
    if [ -f "$OUT/gpu_check.json" ]; then  # the cost model against the stage times just measured, and the paper's cost
        echo "=== classaware estimate of the parameters just run, from the figures just measured"
        (cd "$REPO" && classaware estimate --params "$PIPE/params.yaml" --throughput "$OUT/gpu_check.json")
        echo "=== classaware estimate --profile paper, from the figures just measured"
        (cd "$REPO" && classaware estimate --profile paper --throughput "$OUT/gpu_check.json")
    fi
    echo "=== done in $(( $(date +%s) - START )) s: $OUT/gpu_check.json"
    return "$rc"
}

main 2>&1 | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
