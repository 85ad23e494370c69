#!/usr/bin/env bash
# GPU check of the training engine: on a machine with one GPU (no internet needed), build a micro toy model, train it
# a few steps on CUDA through the engine's device paths, exercise vLLM if installed, and print what was verified.
#   bash scripts/gpu_check.sh                 # the check (exit 0: every check passed)
#   bash scripts/gpu_check.sh --device cpu    # the same checks without a GPU, to test the script itself
#   bash scripts/gpu_check.sh --real-model Qwen/Qwen2.5-0.5B-Instruct   # then the real path on a cached model
# Details: scripts/gpu_check.py, docs/scaling.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} TOKENIZERS_PARALLELISM=false
exec "$PYTHON" scripts/gpu_check.py "$@"
