#!/usr/bin/env bash
# The device check: on a machine with one GPU, in at most 8 minutes (each part has its own timeout; they add up to
# 463 s), correctness on CUDA against the CPU and throughput at real sizes with random weights, all in one JSON.
# Run from the checkout root with its .venv built (nothing is downloaded: random weights, synthetic images and the
# repository's own fixtures):
#
#     OUT=/some/dir bash benchmarks/device_check.sh          # -> $OUT/device_check.json (+ $OUT/logs, $OUT/parts)
#     OUT=/tmp/dry  bash benchmarks/device_check.sh --dry    # every part on the CPU at toy sizes (no figure worth keeping)
#
# docs/gpu.md says what each part and figure means.
set -uo pipefail
DRY=""
[ "${1:-}" = "--dry" ] && DRY="--dry"
cd "$(dirname "$0")/.."
PY=${PYTHON:-$PWD/.venv/bin/python}
OUT=${OUT:-$PWD/device_check_out}
WORK=$(mktemp -d /tmp/device_check.XXXXXX)
mkdir -p "$OUT/parts" "$OUT/logs"
export PYTHONPATH=$PWD MPLCONFIGDIR=$WORK/mpl PYTHONDONTWRITEBYTECODE=1
CHECK="$PY benchmarks/device_check.py"
PARTS=$OUT/parts
started_all=$(date +%s)

part() {  # part NAME TIMEOUT_S COMMAND...: its log in $OUT/logs/NAME.log, its status in $PARTS/NAME.status.json
    local name=$1 limit=$2 start rc timed_out=false
    shift 2
    start=$(date +%s)
    timeout -k 10 "$limit" "$@" >"$OUT/logs/$name.log" 2>&1
    rc=$?
    { [ $rc -eq 124 ] || [ $rc -eq 137 ]; } && timed_out=true
    printf '{"rc": %d, "seconds": %d, "timeout_s": %d, "timed_out": %s}\n' "$rc" "$(($(date +%s) - start))" "$limit" "$timed_out" \
        >"$PARTS/$name.status.json"
    echo "[$(date +%T)] $name: rc $rc in $(($(date +%s) - start)) s (limit $limit s)"
}

# 0. the environment; without --dry, no CUDA stops everything (every `device: auto` stage would run on the CPU)
part env 20 $CHECK env "$PARTS/env.json" $DRY
if [ -z "$DRY" ] && ! grep -q '"cuda_available": true' "$PARTS/env.json" 2>/dev/null; then
    echo "torch sees no CUDA device: nothing to check (run with --dry for the CPU dry run)" | tee "$OUT/logs/ABORTED.log"
    $CHECK merge "$OUT"
    rm -rf "$WORK"
    exit 1
fi

# 1. correctness: the CUDA-marked tests, the golden parity cases, the tiny chain against the CPU, a DDP step
CUDA_TESTS="tests/test_inference_amp.py tests/test_psa.py::test_batch_pair_labels_torch_equal_the_numpy_ones tests/test_localize.py"
if grep -q '^ *"cuda:' pyproject.toml; then CUDA_TESTS="-m cuda tests"; fi  # the marker, once the repository has it
part cuda_tests 60 $PY -m pytest -q -p no:cacheprovider -rs $CUDA_TESTS
part golden 50 $CHECK golden "$WORK/golden" "$PARTS/golden.json" $DRY
part chain 50 $CHECK chain "$WORK/chain" "$PARTS/chain.json" $DRY
part ddp 25 $CHECK ddp "$PARTS/ddp.json" $DRY

# 2. throughput at the paper's sizes (voc12.yaml, voc12_irn.yaml), random weights; --dry: the embedded config at toy sizes
if [ -z "$DRY" ]; then
    DEV="--device cuda"
    TRAIN="--config workflow/configs/voc12.yaml --steps 10"
    TRAIN_IRN="--config workflow/configs/voc12_irn.yaml --nets deeplab --steps 5"
    EXTRACT="--config workflow/configs/voc12.yaml --height 375 --width 500 --batch 16 --batches 3 --scales 1.0 0.5 1.5"
    INFER="--config workflow/configs/voc12.yaml --height 375 --width 500 --batch 8 --repeats 1"
    PSA_WALK="--height 47 --width 63 --logt 8 --images 8"
    IRN_WALK="--grid 128 --exp-times 8 --threads $(nproc)"
    LOADER="--images 16 --height 375 --width 500 --batch 8 --workers 4 --crf-workers $(nproc) --rounds 2"  # round 1 warms up
else
    DEV="--device cpu"
    TRAIN="--steps 1 --batch 2"
    TRAIN_IRN="--nets deeplab --steps 1 --batch 2"
    EXTRACT="--height 48 --width 64 --batch 2 --batches 1 --scales 1.0 0.5 1.5"
    INFER="--height 48 --width 64 --batch 2 --repeats 1 --scales 0.5 1.0"
    PSA_WALK="--height 12 --width 16 --logt 4 --images 1"
    IRN_WALK="--grid 16 --exp-times 4 --threads 1"
    LOADER="--images 4 --height 48 --width 64 --batch 2 --workers 1 --crf-workers 2 --rounds 1"
fi
part train_step 80 $PY benchmarks/bench_train_step.py $DEV $TRAIN --json "$PARTS/train_step.json"
part train_step_irn_deeplab 25 $PY benchmarks/bench_train_step.py $DEV $TRAIN_IRN --json "$PARTS/train_step_irn_deeplab.json"
part extract 35 $PY benchmarks/bench_extract.py $DEV $EXTRACT --json "$PARTS/extract.json"
part deeplab_infer 40 $PY benchmarks/bench_deeplab_infer.py $DEV $INFER --json "$PARTS/deeplab_infer.json"
part psa_walk_device 12 $PY benchmarks/bench_random_walk.py $DEV $PSA_WALK --json "$PARTS/psa_walk_device.json"
part psa_walk_cpu 12 $PY benchmarks/bench_random_walk.py --device cpu $PSA_WALK --json "$PARTS/psa_walk_cpu.json"
part irn_walk_device 12 $PY benchmarks/bench_irn_walk.py $DEV $IRN_WALK --json "$PARTS/irn_walk_device.json"
part irn_walk_cpu 12 $PY benchmarks/bench_irn_walk.py --device cpu $IRN_WALK --json "$PARTS/irn_walk_cpu.json"
part inference_loader 30 $PY benchmarks/bench_inference_loader.py $DEV $LOADER --json "$PARTS/inference_loader.json"

# 3. one JSON
$CHECK merge "$OUT" | tee "$OUT/logs/merge.log"
echo "wrote $OUT/device_check.json in $(($(date +%s) - started_all)) s"
[ -n "${KEEP:-}" ] || rm -rf "$WORK"
