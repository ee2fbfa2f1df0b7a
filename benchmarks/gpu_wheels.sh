#!/usr/bin/env bash
# The wheelhouse that lets benchmarks/gpu_check.sh train with TRL on the bare GPU machine (issue 17):
#
#   bash benchmarks/gpu_wheels.sh                 # builds .wheels/ at the repository root, for Python 3.12
#   PYVER=3.11 bash benchmarks/gpu_wheels.sh      # for another Python there
#
# That machine has torch, transformers, accelerate, peft, pyarrow and pandas, but no trl or datasets, and no
# network; the wheels travel with the working tree (the device tool's carry option: `.wheels`, 64 MiB in all).
# They are what TRL's SFTTrainer and alma's TrainConfig need beyond what is there, each without its
# dependencies (the list is the closure):
#   trl, datasets                        the trainer and the data set it reads
#   dill, multiprocess, xxhash           datasets' dependencies that torch, transformers and accelerate do not
#                                        bring (filelock, fsspec, huggingface-hub, numpy, packaging, pyyaml, tqdm,
#                                        psutil and jinja2 come with those; pandas and pyarrow are there)
#   pydantic, pydantic-core, annotated-types, typing-inspection, typing-extensions
#                                        alma.config's TrainConfig (jobs.training.trainer_args reads it); the
#                                        typing-extensions torch asks for is older than pydantic's
# The versions are those the project's CPU venv passes its tests with. Compiled wheels (xxhash, pydantic-core)
# are CPython $PYVER manylinux x86_64 ones; the rest are pure Python. pyarrow (~40 MiB) is left out since the GPU
# machine has it; WITH_PYARROW=1 adds it where it is missing or older than datasets needs (>= 24).
# Environment: PYTHON (python3), PYVER (3.12), WHEELS (.wheels), MAX_MIB (60: the carry limit less some room).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PYVER=${PYVER:-3.12}
OUT=${WHEELS:-.wheels}
MAX_MIB=${MAX_MIB:-60}
PACKAGES=(trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 xxhash==4.1.0
          pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
          typing-extensions==4.16.0)
if [ "${WITH_PYARROW:-0}" = 1 ]; then PACKAGES+=(pyarrow==26.0.1); fi

rm -rf "$OUT"
mkdir -p "$OUT"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --dest "$OUT" \
    --python-version "$PYVER" --implementation cp --abi "cp${PYVER/./}" \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    "${PACKAGES[@]}"

ls -1 "$OUT"
BYTES=$(cat "$OUT"/*.whl | wc -c)
MIB=$(awk -v b="$BYTES" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "wheelhouse $OUT: $(ls "$OUT"/*.whl | wc -l) wheels, $MIB MiB (Python $PYVER, manylinux x86_64)"
if [ "$BYTES" -gt $((MAX_MIB * 1048576)) ]; then
    echo "over the $MAX_MIB MiB budget: it would not travel with the working tree" >&2
    exit 1
fi
